//! A [`Source`] over borrowed bytes.

use std::io;

use safeweights::Source;

/// Bytes borrowed from the caller, as a [`Source`]: for archives already in
/// memory (a member of another archive, a memory-mapped file's slice), read
/// without copying. [`safeweights::MemorySource`] is the owning counterpart.
#[derive(Debug, Clone, Copy)]
pub struct SliceSource<'a> {
    bytes: &'a [u8],
}

impl<'a> SliceSource<'a> {
    /// Wraps `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        SliceSource { bytes }
    }

    /// The bytes, with their own lifetime.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

impl Source for SliceSource<'_> {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(offset).ok();
        let src = start
            .and_then(|s| self.bytes.get(s..s.checked_add(buf.len())?))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "read of {} bytes at offset {offset} past the end ({} bytes)",
                        buf.len(),
                        self.bytes.len()
                    ),
                )
            })?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn as_bytes(&self) -> Option<&[u8]> {
        Some(self.bytes)
    }

    fn describe(&self) -> String {
        "<memory>".to_owned()
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    #[test]
    fn reads_inside_and_refuses_past_the_end() {
        let s = SliceSource::new(b"hello");
        let mut b = [0u8; 3];
        s.read_exact_at(2, &mut b).unwrap();
        assert_eq!(&b, b"llo");
        assert!(s.read_exact_at(3, &mut b).is_err());
        assert!(s.read_exact_at(u64::MAX, &mut b).is_err());
        assert_eq!(s.len(), 5);
        assert_eq!(s.as_bytes(), Some(&b"hello"[..]));
    }
}
