//! Anomalies: what is suspicious about an archive without preventing
//! reading it. Scanners report them; loaders may ignore them.

use std::fmt;

/// Something suspicious about the archive that did not prevent reading it.
///
/// Its `Display` is a one-line description; [`Anomaly::member`] and
/// [`Anomaly::offset`] locate it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Anomaly {
    /// Entry is flagged as encrypted (traditional or strong encryption).
    Encrypted {
        /// Entry name.
        name: String,
        /// Offset of its local header.
        offset: u64,
    },
    /// Entry uses a trailing data descriptor (flag bit 3), as streaming
    /// writers such as `torch.save` do.
    DataDescriptor {
        /// Entry name.
        name: String,
        /// Offset of its local header.
        offset: u64,
    },
    /// General-purpose flag bits that ordinary writers do not set.
    UnexpectedFlags {
        /// Entry name.
        name: String,
        /// The unexpected bits.
        bits: u16,
        /// Offset of its local header.
        offset: u64,
    },
    /// Compression method other than stored or deflated.
    UnsupportedMethod {
        /// Entry name.
        name: String,
        /// Method number.
        method: u16,
        /// Offset of its local header.
        offset: u64,
    },
    /// Entry name is absolute or contains a `..` component.
    PathTraversal {
        /// Entry name.
        name: String,
        /// Offset of its local header.
        offset: u64,
    },
    /// Two entries have the same name (the first is used).
    DuplicateName {
        /// Entry name.
        name: String,
        /// Offset of the second one's local header.
        offset: u64,
    },
    /// Two entries whose names differ only in case: readers that look names
    /// up without regard to case (PyTorch's) may use either.
    CaseTwin {
        /// The second entry's name.
        name: String,
        /// The first entry's name.
        other: String,
        /// Offset of the second one's local header.
        offset: u64,
    },
    /// The central directory points at no local header
    /// ([`ZipArchive::inspect`](crate::zip::ZipArchive::inspect) only; an error otherwise).
    MissingLocalHeader {
        /// Entry name.
        name: String,
        /// Where the local header should be.
        offset: u64,
    },
    /// Local header disagrees with the central directory.
    LocalMismatch {
        /// Entry name.
        name: String,
        /// What differs.
        what: String,
        /// Offset of the local header.
        offset: u64,
    },
    /// The data descriptor after an entry disagrees with the central directory.
    DescriptorMismatch {
        /// Entry name.
        name: String,
        /// Where the descriptor should be.
        offset: u64,
    },
    /// Two entries' byte ranges overlap.
    Overlap {
        /// The entry that starts first.
        first: String,
        /// The entry that starts inside it.
        second: String,
        /// Offset of the second one's local header.
        offset: u64,
    },
    /// CRC-32 mismatch found by [`ZipArchive::verify`](crate::zip::ZipArchive::verify).
    CrcMismatch {
        /// Entry name.
        name: String,
        /// Offset of the entry data.
        offset: u64,
    },
    /// A structure is broken but the rest of the archive can be read.
    Malformed {
        /// Entry name, if it concerns one entry.
        name: Option<String>,
        /// Description.
        what: String,
        /// Where.
        offset: u64,
    },
    /// Bytes that belong to no member: before the archive, between or
    /// before the members, or after the end record.
    ExtraBytes {
        /// The entry they precede, if any.
        name: Option<String>,
        /// Description.
        what: String,
        /// Where they start.
        offset: u64,
    },
    /// The archive has a comment.
    Comment {
        /// Comment length.
        len: u16,
        /// Offset of the end of central directory record.
        offset: u64,
    },
}

impl Anomaly {
    /// The entry concerned, if any.
    pub fn member(&self) -> Option<&str> {
        match self {
            Anomaly::Encrypted { name, .. }
            | Anomaly::DataDescriptor { name, .. }
            | Anomaly::UnexpectedFlags { name, .. }
            | Anomaly::UnsupportedMethod { name, .. }
            | Anomaly::PathTraversal { name, .. }
            | Anomaly::DuplicateName { name, .. }
            | Anomaly::CaseTwin { name, .. }
            | Anomaly::MissingLocalHeader { name, .. }
            | Anomaly::LocalMismatch { name, .. }
            | Anomaly::DescriptorMismatch { name, .. }
            | Anomaly::CrcMismatch { name, .. }
            | Anomaly::Overlap { second: name, .. } => Some(name),
            Anomaly::Malformed { name, .. } | Anomaly::ExtraBytes { name, .. } => name.as_deref(),
            Anomaly::Comment { .. } => None,
        }
    }

    /// File offset where it was found.
    pub fn offset(&self) -> u64 {
        match self {
            Anomaly::Encrypted { offset, .. }
            | Anomaly::DataDescriptor { offset, .. }
            | Anomaly::UnexpectedFlags { offset, .. }
            | Anomaly::UnsupportedMethod { offset, .. }
            | Anomaly::PathTraversal { offset, .. }
            | Anomaly::DuplicateName { offset, .. }
            | Anomaly::CaseTwin { offset, .. }
            | Anomaly::MissingLocalHeader { offset, .. }
            | Anomaly::LocalMismatch { offset, .. }
            | Anomaly::DescriptorMismatch { offset, .. }
            | Anomaly::Overlap { offset, .. }
            | Anomaly::CrcMismatch { offset, .. }
            | Anomaly::Malformed { offset, .. }
            | Anomaly::ExtraBytes { offset, .. }
            | Anomaly::Comment { offset, .. } => *offset,
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anomaly::Encrypted { .. } => {
                f.write_str("member is encrypted: its content cannot be inspected")
            }
            Anomaly::DataDescriptor { .. } => {
                f.write_str("member sizes and CRC-32 follow its data (data descriptor)")
            }
            Anomaly::UnexpectedFlags { bits, .. } => {
                write!(f, "unexpected general-purpose flag bits 0x{bits:04x}")
            }
            Anomaly::UnsupportedMethod { method, .. } => {
                write!(f, "compression method {method} cannot be inspected")
            }
            Anomaly::PathTraversal { name, .. } => {
                write!(f, "member name {name:?} is absolute or contains '..'")
            }
            Anomaly::DuplicateName { name, .. } => write!(
                f,
                "member name {name:?} appears more than once; readers disagree on which one is used"
            ),
            Anomaly::CaseTwin { name, other, .. } => write!(
                f,
                "member names {other:?} and {name:?} differ only in case; readers that ignore case disagree on which one is used"
            ),
            Anomaly::MissingLocalHeader { .. } => {
                f.write_str("central directory points at no local header")
            }
            Anomaly::DescriptorMismatch { .. } => {
                f.write_str("data descriptor disagrees with the central directory")
            }
            Anomaly::Overlap { first, .. } => write!(
                f,
                "member overlaps {first:?}: the same bytes are read as two members"
            ),
            Anomaly::CrcMismatch { .. } => {
                f.write_str("CRC-32 of the content disagrees with the central directory")
            }
            Anomaly::LocalMismatch { what, .. }
            | Anomaly::Malformed { what, .. }
            | Anomaly::ExtraBytes { what, .. } => f.write_str(what),
            Anomaly::Comment { len, .. } => write!(f, "archive comment of {len} bytes"),
        }
    }
}
