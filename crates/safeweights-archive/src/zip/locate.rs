//! Finding zip archives that do not start or end where the data does: a zip
//! stored inside a tensor, after another file's bytes, or before trailing
//! data. Every end-of-central-directory record is checked the way a reader
//! handed exactly that archive would: its central directory must start with a
//! central header and its first member with a local header.

use std::ops::Range;

use super::spec::{u16_at, u32_at, CDH_SIG, EOCD_SIG, LFH_SIG};

/// The byte ranges of the (non-empty, non-zip64) zip archives embedded
/// anywhere in `data`, from the first local header to the end of the
/// end-of-central-directory record and its comment, in order.
///
/// ```
/// use safeweights_archive::zip::find_embedded;
/// assert!(find_embedded(b"no zip here").is_empty());
/// ```
pub fn find_embedded(data: &[u8]) -> Vec<Range<usize>> {
    let sig = EOCD_SIG.to_le_bytes();
    let mut out = Vec::new();
    let mut i = 0usize;
    while let Some(p) = data
        .get(i..)
        .and_then(|d| d.windows(4).position(|w| w == sig))
    {
        let eocd = i + p;
        i = eocd + 4;
        if let Some(r) = archive_ending_at(data, eocd) {
            out.push(r);
        }
    }
    out
}

fn archive_ending_at(data: &[u8], eocd: usize) -> Option<Range<usize>> {
    let entries = u16_at(data, eocd.checked_add(10)?)?;
    let cd_size = usize::try_from(u32_at(data, eocd.checked_add(12)?)?).ok()?;
    let cd_off = usize::try_from(u32_at(data, eocd.checked_add(16)?)?).ok()?;
    let comment = usize::from(u16_at(data, eocd.checked_add(20)?)?);
    if entries == 0 || entries == u16::MAX {
        return None;
    }
    let cd_start = eocd.checked_sub(cd_size)?;
    let start = cd_start.checked_sub(cd_off)?;
    if u32_at(data, cd_start)? != CDH_SIG || u32_at(data, start)? != LFH_SIG {
        return None;
    }
    let end = eocd.checked_add(22)?.checked_add(comment)?.min(data.len());
    Some(start..end)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;
    use crate::ZipWriter;
    use std::io::Cursor;

    #[test]
    fn finds_a_zip_between_other_bytes() {
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        w.entry("a.pkl", b"\x80\x02N.").unwrap();
        let zip = w.finish().unwrap().into_inner();
        let mut data = vec![7u8; 100];
        data.extend_from_slice(&zip);
        data.extend_from_slice(&[9u8; 50]);
        assert_eq!(find_embedded(&data), vec![100..100 + zip.len()]);
        assert!(find_embedded(&data[..120]).is_empty());
    }
}
