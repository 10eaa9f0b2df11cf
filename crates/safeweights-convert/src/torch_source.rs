//! PyTorch checkpoints (zip or legacy) as a tensor source: torch dtypes and
//! shapes in safetensors terms, tied tensors deduplicated, and refusals
//! (subclasses, bare pickles naming forbidden globals) made clear.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use safeweights::Dtype;
use safeweights_pickle::torch::NamedTensor;
use safeweights_pickle::{Format, TorchCheckpoint, TorchDtype};

use crate::error::{ConvertError, Result};
use crate::npy::{self, NpyDtype};
use crate::options::{DroppedAlias, Leaf};
use crate::source::{check_unique, Entry, TensorSource};
use crate::ties::{keep_of, TieRule};

/// The safetensors dtype of a torch dtype, or why there is none.
pub(crate) fn map_torch_dtype(d: TorchDtype) -> std::result::Result<Dtype, String> {
    let code = match d {
        // safetensors 0.8 (and this crate's core) has the fnuz float8 types.
        TorchDtype::Float8E4M3Fnuz => "F8_E4M3FNUZ",
        TorchDtype::Float8E5M2Fnuz => "F8_E5M2FNUZ",
        TorchDtype::Complex128 => {
            return Err("torch.complex128 has no safetensors dtype (only complex64 does)".into())
        }
        TorchDtype::Complex32 => {
            return Err("torch.complex32 has no safetensors dtype (only complex64 does)".into())
        }
        TorchDtype::QInt8
        | TorchDtype::QUInt8
        | TorchDtype::QInt32
        | TorchDtype::QUInt4x2
        | TorchDtype::QUInt2x4 => {
            return Err(format!(
                "quantized dtype {d} has no safetensors equivalent; dequantize it first"
            ))
        }
        other => other
            .safetensors_code()
            .ok_or_else(|| format!("{other} has no safetensors dtype"))?,
    };
    Dtype::from_name(code).ok_or_else(|| format!("safetensors dtype {code} is unknown"))
}

fn to_usize(v: u64, what: &str) -> std::result::Result<usize, String> {
    usize::try_from(v).map_err(|_| format!("{what} {v} does not fit this platform"))
}

/// Shape in safetensors terms (F4 counts 4-bit elements: last dim doubled).
pub(crate) fn torch_shape(
    dtype: TorchDtype,
    shape: &[u64],
) -> std::result::Result<Vec<usize>, String> {
    let mut out = shape
        .iter()
        .map(|&d| to_usize(d, "dimension"))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if dtype == TorchDtype::Float4E2M1FnX2 {
        let last = out.last_mut().ok_or(
            "a 0-dimensional float4_e2m1fn_x2 tensor holds two values and has no F4 shape",
        )?;
        *last = last.checked_mul(2).ok_or("dimension overflows")?;
    }
    Ok(out)
}

enum Item {
    Tensor(usize),
    Array(usize),
}

/// A PyTorch checkpoint, deduplicated unless asked not to.
pub(crate) struct TorchSource {
    pub ck: TorchCheckpoint,
    file: PathBuf,
    entries: Vec<Entry>,
    items: Vec<Item>,
    pub aliases: Vec<DroppedAlias>,
    pub shared_copies: Vec<String>,
    pub leaves: Vec<Leaf>,
}

impl TorchSource {
    pub fn open(path: &Path, keep_shared: bool) -> Result<Self> {
        Self::open_with(path, keep_shared, TieRule::SortOrder)
    }

    /// Opens with `rule` choosing the kept name of each tie group.
    pub fn open_with(path: &Path, keep_shared: bool, rule: TieRule) -> Result<Self> {
        let ck = TorchCheckpoint::open(path).map_err(|e| {
            if matches!(e, safeweights_pickle::Error::NotACheckpoint { .. }) {
                if let Some(e) = bare_pickle_global(path) {
                    return clarify(path, e);
                }
            }
            clarify(path, e)
        })?;
        Self::from_checkpoint(ck, path, keep_shared, rule)
    }

    pub fn format_name(&self) -> &'static str {
        match self.ck.format() {
            Format::Legacy => "torch-legacy",
            Format::LegacyTar => "torch-legacy-tar",
            _ => "torch-zip",
        }
    }

    fn from_checkpoint(
        ck: TorchCheckpoint,
        path: &Path,
        keep_shared: bool,
        rule: TieRule,
    ) -> Result<Self> {
        let file = path.to_path_buf();
        let unsupported = |tensor: &str, reason: String| ConvertError::UnsupportedTensor {
            file: file.clone(),
            tensor: tensor.to_owned(),
            reason,
        };
        let tensors = ck.tensors();
        let (drop, aliases, shared_copies) = if keep_shared {
            (HashSet::new(), Vec::new(), Vec::new())
        } else {
            dedup(&ck, tensors, rule)
        };
        let mut entries = Vec::new();
        let mut items = Vec::new();
        for (i, nt) in tensors.iter().enumerate() {
            if drop.contains(&i) {
                continue;
            }
            let t = &nt.tensor;
            let dtype = map_torch_dtype(t.dtype).map_err(|r| unsupported(&nt.name, r))?;
            let shape = torch_shape(t.dtype, &t.shape).map_err(|r| unsupported(&nt.name, r))?;
            let bytes = t
                .numel()
                .and_then(|n| n.checked_mul(t.dtype.element_size()))
                .ok_or_else(|| unsupported(&nt.name, "size overflows".into()))?;
            entries.push(Entry {
                name: nt.name.clone(),
                dtype,
                shape,
                bytes,
            });
            items.push(Item::Tensor(i));
        }
        for (i, na) in ck.numpy_arrays().iter().enumerate() {
            let a = &na.array;
            let dt = NpyDtype::parse(&format!("{}{}", a.dtype.byteorder, a.dtype.descr))
                .map_err(|r| unsupported(&na.name, format!("numpy array: {r}")))?;
            let shape = a
                .shape
                .iter()
                .map(|&d| to_usize(d, "dimension"))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|r| unsupported(&na.name, r))?;
            let bytes = npy::nbytes(&shape, dt.size)
                .filter(|&n| n == a.data.len() as u64)
                .ok_or_else(|| {
                    unsupported(&na.name, "numpy array data does not match its shape".into())
                })?;
            entries.push(Entry {
                name: na.name.clone(),
                dtype: dt.dtype,
                shape,
                bytes,
            });
            items.push(Item::Array(i));
        }
        check_unique(&file, &entries)?;
        let leaves = ck
            .leaves()
            .iter()
            .map(|(name, value)| Leaf {
                name: name.clone(),
                value: value.clone(),
            })
            .collect();
        Ok(TorchSource {
            ck,
            file,
            entries,
            items,
            aliases,
            shared_copies,
            leaves,
        })
    }
}

/// Gives refusals of sparse / quantized / other tensor subclasses a clear message.
/// For a file the torch reader does not recognise: if it is a bare pickle
/// that names a forbidden global, the error the zip path gives for it, so
/// that it is reported as dangerous rather than merely unsupported. The
/// pickle is only evaluated by the data-only evaluator (nothing is called);
/// at most `max_pickle_bytes` are read. Bytes that merely happen to parse
/// up to a GLOBAL opcode (text starting with `c`) are not taken for a
/// pickle: the global must be made of Python identifiers.
fn bare_pickle_global(path: &Path) -> Option<safeweights_pickle::Error> {
    use safeweights_pickle::{evaluate, Error as PE, Limits, PickleErrorKind as K};
    use std::io::Read;
    let limits = Limits::default();
    let mut data = Vec::new();
    fs_err::File::open(path)
        .ok()?
        .take(limits.max_pickle_bytes)
        .read_to_end(&mut data)
        .ok()?;
    let source = evaluate(&data, &limits).err()?;
    let K::ForbiddenGlobal { module, name } = &source.kind else {
        return None;
    };
    let ident = |s: &str| {
        s.split('.').all(|p| {
            p.chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
                && p.chars().all(|c| c.is_alphanumeric() || c == '_')
        })
    };
    if !(ident(module) && ident(name)) {
        return None;
    }
    Some(PE::Pickle {
        file: path.to_path_buf(),
        member: None,
        source,
    })
}

pub(crate) fn clarify(path: &Path, e: safeweights_pickle::Error) -> ConvertError {
    use safeweights_pickle::{Error as PE, PickleErrorKind as K};
    if let PE::Pickle { source, .. } = &e {
        if let K::ForbiddenGlobal { module, name } = &source.kind {
            let what = if name.contains("sparse") {
                Some("sparse tensors have no safetensors equivalent; make them dense (.to_dense()) first")
            } else if name.contains("qtensor") {
                Some("quantized tensors have no safetensors equivalent; dequantize them first")
            } else if name.contains("nested") {
                Some("nested tensors have no safetensors equivalent")
            } else {
                None
            };
            if let Some(what) = what {
                return ConvertError::Unsupported {
                    file: path.to_path_buf(),
                    reason: format!("{module}.{name}: {what} (refused: {e})"),
                };
            }
        }
    }
    ConvertError::Pickle(e)
}

/// A view's identity: storage offset, shape, strides, dtype.
type ViewKey<'a> = (u64, &'a [u64], &'a [u64], TorchDtype);

/// Decides which tensor names are dropped as aliases: within a storage,
/// tensors whose byte ranges overlap form a group (as the reference's
/// `_find_shared_tensors` does); among exact aliases (same dtype, offset,
/// shape, strides) one is kept, preferring as the reference's
/// `_remove_duplicate_names` does the first by sort order among names
/// covering the whole storage. Overlapping views that are not exact aliases
/// are all written, each as its own contiguous copy (lossless). In a
/// Hugging Face folder, `rule` keeps the name transformers keeps instead
/// (see [`crate::ties`]).
fn dedup(
    ck: &TorchCheckpoint,
    tensors: &[NamedTensor],
    rule: TieRule,
) -> (HashSet<usize>, Vec<DroppedAlias>, Vec<String>) {
    let mut by_storage: BTreeMap<&str, Vec<(u64, u64, usize)>> = BTreeMap::new();
    for (i, nt) in tensors.iter().enumerate() {
        let t = &nt.tensor;
        let slen = ck.storage_len(&t.storage.key).unwrap_or(0);
        if slen == 0 {
            continue;
        }
        if let Ok(Some((s, e))) = t.byte_extent() {
            by_storage
                .entry(t.storage.key.as_str())
                .or_default()
                .push((s, e, i));
        }
    }
    let mut drop = HashSet::new();
    let mut aliases = Vec::new();
    let mut copies = Vec::new();
    for (key, mut areas) in by_storage {
        if areas.len() < 2 {
            continue;
        }
        let slen = ck.storage_len(key).unwrap_or(0);
        areas.sort_by(|a, b| (a.0, a.1, &tensors[a.2].name).cmp(&(b.0, b.1, &tensors[b.2].name)));
        // cluster overlapping areas
        let mut clusters: Vec<Vec<usize>> = Vec::new();
        let mut last_stop = 0u64;
        for (n, &(start, stop, i)) in areas.iter().enumerate() {
            if n == 0 || start >= last_stop {
                clusters.push(vec![i]);
            } else if let Some(c) = clusters.last_mut() {
                c.push(i);
            }
            last_stop = stop;
        }
        for cluster in clusters {
            if cluster.len() < 2 {
                continue;
            }
            // exact alias groups
            let mut groups: HashMap<ViewKey<'_>, Vec<usize>> = HashMap::new();
            for &i in &cluster {
                let t = &tensors[i].tensor;
                groups
                    .entry((t.storage_offset, &t.shape[..], &t.stride[..], t.dtype))
                    .or_default()
                    .push(i);
            }
            let mut kept_names = Vec::new();
            for (_, members) in groups {
                let complete = |i: usize| {
                    let t = &tensors[i].tensor;
                    t.storage_offset == 0
                        && t.numel()
                            .and_then(|n| n.checked_mul(t.dtype.element_size()))
                            == Some(slen)
                };
                let ranked: Vec<(usize, &str, bool)> = members
                    .iter()
                    .map(|&i| (i, tensors[i].name.as_str(), complete(i)))
                    .collect();
                let keep = keep_of(rule, &ranked).unwrap_or(members[0]);
                for &m in &members {
                    if m != keep {
                        drop.insert(m);
                        aliases.push(DroppedAlias {
                            name: tensors[m].name.clone(),
                            kept: tensors[keep].name.clone(),
                        });
                    }
                }
                kept_names.push(tensors[keep].name.clone());
            }
            if kept_names.len() > 1 {
                kept_names.sort();
                copies.extend(kept_names);
            }
        }
    }
    aliases.sort_by(|a, b| a.name.cmp(&b.name));
    copies.sort();
    (drop, aliases, copies)
}

impl TensorSource for TorchSource {
    fn entries(&self) -> &[Entry] {
        &self.entries
    }

    fn copy_to(&self, i: usize, w: &mut dyn Write) -> Result<u64> {
        match self.items.get(i) {
            Some(Item::Tensor(t)) => {
                let t = &self.ck.tensors()[*t].tensor;
                Ok(self.ck.copy_contiguous(t, &mut &mut *w)?)
            }
            Some(Item::Array(a)) => {
                let a = &self.ck.numpy_arrays()[*a].array;
                let name = &self.entries[i].name;
                let dt = NpyDtype::parse(&format!("{}{}", a.dtype.byteorder, a.dtype.descr))
                    .map_err(|r| self.unsupported(name, r))?;
                let bytes =
                    npy::to_c_order_le(&a.data, &self.entries[i].shape, &dt, a.fortran_order);
                w.write_all(&bytes)
                    .map_err(crate::error::io_err(&self.file))?;
                Ok(bytes.len() as u64)
            }
            None => Err(self.unsupported("", "no such tensor".into())),
        }
    }

    fn read_at(&self, i: usize, offset: u64, buf: &mut [u8]) -> Result<()> {
        match self.items.get(i) {
            Some(Item::Tensor(t)) => {
                let t = &self.ck.tensors()[*t].tensor;
                if !t.is_contiguous() {
                    return Err(self.unsupported(
                        &self.entries[i].name,
                        "random access into a strided view".into(),
                    ));
                }
                let es = t.dtype.element_size();
                self.ck.read_storage(
                    &t.storage.key,
                    t.dtype,
                    t.storage_offset * es + offset,
                    buf,
                )?;
                Ok(())
            }
            _ => {
                let mut all = Vec::new();
                self.copy_to(i, &mut all)?;
                let s = usize::try_from(offset).unwrap_or(usize::MAX);
                let src = all.get(s..s.saturating_add(buf.len())).ok_or_else(|| {
                    self.unsupported(&self.entries[i].name, "read past end".into())
                })?;
                buf.copy_from_slice(src);
                Ok(())
            }
        }
    }

    fn file(&self, _: usize) -> &Path {
        &self.file
    }
}

impl TorchSource {
    fn unsupported(&self, tensor: &str, reason: String) -> ConvertError {
        ConvertError::UnsupportedTensor {
            file: self.file.clone(),
            tensor: tensor.to_owned(),
            reason,
        }
    }
}
