//! Verification shared by the CPU and CUDA destinations: a loaded tensor
//! compared with its bytes read again from its file.

use crate::error::LoadError;
use crate::plan::LoadPlan;

/// Compares tensor `i` as loaded with its bytes read from its file.
pub(crate) fn compare(plan: &LoadPlan, i: usize, got: &[u8]) -> Result<(), LoadError> {
    let t = &plan.tensors()[i];
    let file = &plan.files()[t.file()];
    let mismatch = |offset: u64| LoadError::Mismatch {
        file: file.name().to_owned(),
        tensor: t.name().to_owned(),
        offset,
    };
    if got.len() as u64 != t.len() {
        return Err(mismatch(got.len().min(t.len() as usize) as u64));
    }
    let mut at = 0usize;
    let mut want = Vec::new();
    for r in t.ranges() {
        // Ranges were checked against the file when planned.
        let len = (r.end - r.start) as usize;
        want.resize(len, 0);
        file.source()
            .read_exact_at(r.start, &mut want)
            .map_err(|source| LoadError::Read {
                file: file.name().to_owned(),
                tensor: t.name().to_owned(),
                offset: r.start,
                source,
            })?;
        let part = &got[at..at + len];
        if let Some(k) = part.iter().zip(&want).position(|(a, b)| a != b) {
            return Err(mismatch((at + k) as u64));
        }
        at += len;
    }
    Ok(())
}
