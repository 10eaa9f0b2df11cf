//! What the central directory says about a member.

/// Compression method of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Method {
    /// Stored (0).
    Stored,
    /// Deflated (8).
    Deflated,
    /// Anything else (reading fails).
    Other(u16),
}

impl Method {
    pub(crate) fn from_code(m: u16) -> Self {
        match m {
            0 => Method::Stored,
            8 => Method::Deflated,
            m => Method::Other(m),
        }
    }
    /// The method number as written in the archive.
    pub fn code(self) -> u16 {
        match self {
            Method::Stored => 0,
            Method::Deflated => 8,
            Method::Other(m) => m,
        }
    }
}

/// One archive member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Name from the central directory.
    pub name: String,
    /// Compression method.
    pub method: Method,
    /// General-purpose flags (central directory).
    pub flags: u16,
    /// CRC-32 from the central directory.
    pub crc32: u32,
    /// Compressed size.
    pub compressed_size: u64,
    /// Uncompressed size.
    pub size: u64,
    /// Offset of the local header.
    pub header_offset: u64,
    /// Offset of the entry data (after the local header); meaningless when
    /// `has_local_header` is false.
    pub data_offset: u64,
    /// Whether a local header was found where the central directory points
    /// (always true for archives opened with [`ZipArchive::new`](crate::zip::ZipArchive::new)).
    pub has_local_header: bool,
}

impl Entry {
    /// Whether the entry is a folder (its name ends with `/`).
    pub fn is_dir(&self) -> bool {
        self.name.ends_with('/')
    }
}
