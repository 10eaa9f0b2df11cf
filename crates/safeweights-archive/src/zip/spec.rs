//! Numbers of the zip format shared by the reader and the writer:
//! record signatures, general-purpose flag bits, little-endian field
//! access, and CRC-32.

/// End of central directory record.
pub(crate) const EOCD_SIG: u32 = 0x0605_4b50;
/// Zip64 end of central directory locator.
pub(crate) const ZIP64_LOC_SIG: u32 = 0x0706_4b50;
/// Zip64 end of central directory record.
pub(crate) const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
/// Central directory file header.
pub(crate) const CDH_SIG: u32 = 0x0201_4b50;
/// Local file header.
pub(crate) const LFH_SIG: u32 = 0x0403_4b50;
/// Data descriptor (optional signature).
pub(crate) const DESC_SIG: u32 = 0x0807_4b50;

/// Flag bits for traditional (0) and strong (6) encryption.
pub(crate) const ENCRYPTED: u16 = 0x0041;
/// Flag bit 3: sizes and CRC-32 follow the data in a data descriptor.
pub(crate) const DESCRIPTOR: u16 = 0x0008;
/// Flag bits ordinary writers set: encryption, compression options,
/// descriptor, UTF-8 names.
pub(crate) const KNOWN_FLAGS: u16 = 0x080E | ENCRYPTED;

/// Flag bit 11: the name is UTF-8.
pub(crate) const UTF8_NAMES: u16 = 0x0800;

pub(crate) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}
pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}
pub(crate) fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}
pub(crate) fn le16(b: &[u8], at: usize) -> u16 {
    u16_at(b, at).unwrap_or(0)
}
pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    u32_at(b, at).unwrap_or(0)
}
pub(crate) fn le64(b: &[u8], at: usize) -> u64 {
    u64_at(b, at).unwrap_or(0)
}

/// CRC-32 (IEEE, as zip and gzip use it), continuing from `crc` (start with 0).
pub fn crc32(crc: u32, data: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(crc);
    h.update(data);
    h.finalize()
}

/// Whether a member name would land outside the folder it is extracted to:
/// absolute (`/x`, `\\x`), drive-relative (`C:x`), or with a `..` component
/// (either separator).
pub fn escapes_extraction(name: &str) -> bool {
    let n = name.replace('\\', "/");
    n.starts_with('/') || n.as_bytes().get(1) == Some(&b':') || n.split('/').any(|c| c == "..")
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    #[test]
    fn crc_known() {
        assert_eq!(crc32(0, b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(crc32(0, b"1234"), b"56789"), 0xCBF4_3926);
    }
}
