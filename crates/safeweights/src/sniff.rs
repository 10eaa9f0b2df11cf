//! Telling what a file is when it is not safetensors, from its first bytes,
//! so that an error can say "this is a PyTorch checkpoint" rather than
//! "header length 578712552184433488 exceeds the limit".

use std::io::Read;
use std::path::Path;

/// A format a file was recognised as instead of safetensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForeignFormat {
    /// A zip archive: what `torch.save` writes (`.bin`, `.pt`, `.pth`).
    Zip,
    /// A bare pickle: a legacy (pre-1.6) `torch.save` file, joblib, ...
    Pickle,
    /// A NumPy `.npy` array.
    Numpy,
    /// A GGUF model (llama.cpp).
    Gguf,
    /// An HDF5 file (Keras `.h5`).
    Hdf5,
    /// A gzip stream.
    Gzip,
}

impl ForeignFormat {
    /// What it is, for messages: "a PyTorch checkpoint (zip) ...".
    pub fn describe(self) -> &'static str {
        match self {
            ForeignFormat::Zip => "a zip archive (a PyTorch checkpoint as torch.save writes it)",
            ForeignFormat::Pickle => "a pickle (a legacy PyTorch checkpoint or another pickle)",
            ForeignFormat::Numpy => "a NumPy .npy array",
            ForeignFormat::Gguf => "a GGUF model",
            ForeignFormat::Hdf5 => "an HDF5 file (Keras .h5)",
            ForeignFormat::Gzip => "a gzip stream",
        }
    }

    /// Whether `safeweights-convert` converts it to safetensors.
    pub fn converts(self) -> bool {
        matches!(
            self,
            ForeignFormat::Zip | ForeignFormat::Pickle | ForeignFormat::Numpy
        )
    }

    /// Recognises a format from a file's first bytes (8 are enough).
    pub fn from_prefix(prefix: &[u8]) -> Option<ForeignFormat> {
        let starts = |magic: &[u8]| prefix.starts_with(magic);
        if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") {
            Some(ForeignFormat::Zip)
        } else if is_pickle(prefix) {
            Some(ForeignFormat::Pickle)
        } else if starts(b"\x93NUMPY") {
            Some(ForeignFormat::Numpy)
        } else if starts(b"GGUF") {
            Some(ForeignFormat::Gguf)
        } else if starts(b"\x89HDF\r\n\x1a\n") {
            Some(ForeignFormat::Hdf5)
        } else if starts(b"\x1f\x8b") {
            Some(ForeignFormat::Gzip)
        } else {
            None
        }
    }
}

/// PROTO 2 to 5, then an opcode that starts a checkpoint's pickle: LONG1
/// (legacy torch's magic number), EMPTY_DICT, MARK, GLOBAL, FRAME,
/// EMPTY_LIST, SHORT_BINUNICODE, STACK_GLOBAL. (A safetensors header of
/// 640 to 1,535 bytes also starts `80 02`..`80 05`, but then a zero byte.)
fn is_pickle(prefix: &[u8]) -> bool {
    match prefix {
        [0x80, proto, op, ..] => {
            (2..=5).contains(proto) && [0x8a, 0x7d, 0x28, 0x63, 0x95, 0x5d, 0x8c, 0x93].contains(op)
        }
        _ => false,
    }
}

/// The format of the file at `path` when its first bytes say it is not
/// safetensors; `None` when they do not tell (or it cannot be read).
pub fn foreign_format(path: &Path) -> Option<ForeignFormat> {
    let mut prefix = Vec::with_capacity(8);
    fs_err::File::open(path)
        .ok()?
        .take(8)
        .read_to_end(&mut prefix)
        .ok()?;
    ForeignFormat::from_prefix(&prefix)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    #[test]
    fn magic_numbers() {
        assert_eq!(
            ForeignFormat::from_prefix(b"PK\x03\x04\0\0\0\0"),
            Some(ForeignFormat::Zip)
        );
        assert_eq!(
            ForeignFormat::from_prefix(b"\x80\x02\x8a\x0alf"),
            Some(ForeignFormat::Pickle)
        );
        assert_eq!(
            ForeignFormat::from_prefix(b"\x93NUMPY\x01\0"),
            Some(ForeignFormat::Numpy)
        );
        // safetensors header lengths
        assert_eq!(ForeignFormat::from_prefix(&64u64.to_le_bytes()), None);
        assert_eq!(ForeignFormat::from_prefix(&640u64.to_le_bytes()), None);
    }
}
