//! Error types.
//!
//! Structural errors carry the byte offset in the archive where the problem
//! was found ([`ZipError`], [`TarError`]); entry-level errors name the member.
//! Every error implements [`safeweights::Diagnostic`] with a stable
//! `snake_case` [`kind`](Diagnostic::kind). The archive readers work on a
//! [`safeweights::Source`] and do not know a file name: callers that do (the
//! checkpoint reader, the converter) wrap these errors with it.

use safeweights::{Diagnostic, ErrorClass};

/// A problem with a zip container.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ZipErrorKind {
    /// No end-of-central-directory record.
    #[error("no end of central directory record found")]
    NoEndOfCentralDirectory,
    /// A structure is truncated or lies outside the file.
    #[error("truncated or out-of-bounds {what}")]
    Truncated {
        /// Which structure.
        what: &'static str,
    },
    /// A signature did not match.
    #[error("bad signature for {what}")]
    BadSignature {
        /// Which structure.
        what: &'static str,
    },
    /// A field holds an impossible value.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which field.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// Entry uses an unsupported compression method or encryption.
    #[error("entry {name:?}: unsupported {what}")]
    Unsupported {
        /// Entry name.
        name: String,
        /// What is unsupported.
        what: String,
    },
    /// CRC-32 of the entry data does not match the directory.
    #[error("entry {name:?}: CRC-32 mismatch (expected {expected:08x}, computed {computed:08x})")]
    CrcMismatch {
        /// Entry name.
        name: String,
        /// CRC from the central directory.
        expected: u32,
        /// CRC computed over the data.
        computed: u32,
    },
    /// Decompression failed or produced the wrong size.
    #[error("entry {name:?}: decompression failed: {reason}")]
    Inflate {
        /// Entry name.
        name: String,
        /// Why.
        reason: String,
    },
    /// Entry not found.
    #[error("entry {0:?} not found")]
    NotFound(String),
}

/// What [`ZipErrorKind::Invalid`] reports when a size or count limit of the
/// reader (not a rule of the format) was reached.
const ZIP_LIMITS: [&str; 2] = ["entry size", "entry count"];

impl ZipErrorKind {
    /// The entry concerned, if any.
    pub fn member(&self) -> Option<&str> {
        match self {
            ZipErrorKind::Unsupported { name, .. }
            | ZipErrorKind::CrcMismatch { name, .. }
            | ZipErrorKind::Inflate { name, .. }
            | ZipErrorKind::NotFound(name) => Some(name),
            _ => None,
        }
    }
}

impl Diagnostic for ZipErrorKind {
    fn kind(&self) -> &'static str {
        match self {
            ZipErrorKind::NoEndOfCentralDirectory => "zip_no_end_of_central_directory",
            ZipErrorKind::Truncated { .. } => "zip_truncated",
            ZipErrorKind::BadSignature { .. } => "zip_bad_signature",
            ZipErrorKind::Invalid { what, .. } if ZIP_LIMITS.contains(what) => "zip_limit_exceeded",
            ZipErrorKind::Invalid { .. } => "zip_invalid_field",
            ZipErrorKind::Unsupported { .. } => "zip_unsupported",
            ZipErrorKind::CrcMismatch { .. } => "zip_crc_mismatch",
            ZipErrorKind::Inflate { .. } => "zip_inflate_failed",
            ZipErrorKind::NotFound(_) => "zip_member_not_found",
        }
    }

    fn class(&self) -> ErrorClass {
        match self {
            ZipErrorKind::Invalid { what, .. } if ZIP_LIMITS.contains(what) => ErrorClass::Limit,
            ZipErrorKind::Unsupported { .. } => ErrorClass::Unsupported,
            ZipErrorKind::NotFound(_) => ErrorClass::Usage,
            _ => ErrorClass::InvalidInput,
        }
    }
}

/// A zip error with the byte offset in the archive where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("zip error at byte {offset}: {kind}")]
#[non_exhaustive]
pub struct ZipError {
    /// Byte offset in the archive where the problem was found.
    pub offset: u64,
    /// What went wrong.
    pub kind: ZipErrorKind,
}

impl ZipError {
    /// Builds an error.
    pub fn new(offset: u64, kind: ZipErrorKind) -> Self {
        ZipError { offset, kind }
    }
}

impl Diagnostic for ZipError {
    fn kind(&self) -> &'static str {
        self.kind.kind()
    }
    fn class(&self) -> ErrorClass {
        self.kind.class()
    }
    fn offset(&self) -> Option<u64> {
        Some(self.offset)
    }
}

/// Why a zip member could not be read for inspection
/// ([`ZipArchive::head`](crate::zip::ZipArchive::head),
/// [`ZipArchive::read_unverified`](crate::zip::ZipArchive::read_unverified)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    /// It would expand past the limit.
    #[error("member expands past the size limit")]
    TooBig,
    /// Encrypted, or a compression method this reader does not support.
    #[error("member is encrypted or uses an unsupported compression method")]
    Unsupported,
    /// Broken data.
    #[error("{0}")]
    Corrupt(String),
}

impl Diagnostic for InspectError {
    fn kind(&self) -> &'static str {
        match self {
            InspectError::TooBig => "zip_member_too_big",
            InspectError::Unsupported => "zip_member_unsupported",
            InspectError::Corrupt(_) => "zip_member_corrupt",
        }
    }
    fn class(&self) -> ErrorClass {
        match self {
            InspectError::TooBig => ErrorClass::Limit,
            InspectError::Unsupported => ErrorClass::Unsupported,
            InspectError::Corrupt(_) => ErrorClass::InvalidInput,
        }
    }
}

/// A structural problem in a tar archive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TarErrorKind {
    /// The archive ends inside a 512-byte header.
    #[error("truncated header")]
    TruncatedHeader,
    /// The header checksum does not match.
    #[error("header checksum mismatch")]
    BadChecksum,
    /// A numeric header field is not a valid octal or base-256 number.
    #[error("bad {0} field")]
    BadField(&'static str),
    /// Size arithmetic overflows.
    #[error("size overflows")]
    SizeOverflow,
    /// A member's data runs past the end of the archive.
    #[error("member of {size} bytes runs past the end")]
    PastEnd {
        /// Declared size.
        size: u64,
    },
    /// A pax header or GNU long name is larger than
    /// [`MAX_META_BYTES`](crate::tar::MAX_META_BYTES).
    #[error("{what} of {size} bytes exceeds the {max}-byte limit")]
    MetaTooLarge {
        /// Which header.
        what: &'static str,
        /// Declared size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A pax extended header is malformed.
    #[error("malformed pax header: {0}")]
    BadPax(String),
}

impl Diagnostic for TarErrorKind {
    fn kind(&self) -> &'static str {
        match self {
            TarErrorKind::TruncatedHeader => "tar_truncated_header",
            TarErrorKind::BadChecksum => "tar_bad_checksum",
            TarErrorKind::BadField(_) => "tar_bad_field",
            TarErrorKind::SizeOverflow => "tar_size_overflow",
            TarErrorKind::PastEnd { .. } => "tar_past_end",
            TarErrorKind::MetaTooLarge { .. } => "tar_meta_too_large",
            TarErrorKind::BadPax(_) => "tar_bad_pax",
        }
    }
    fn class(&self) -> ErrorClass {
        match self {
            TarErrorKind::MetaTooLarge { .. } => ErrorClass::Limit,
            _ => ErrorClass::InvalidInput,
        }
    }
}

/// A tar error with the byte offset of the header at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tar error at byte {offset}: {kind}")]
#[non_exhaustive]
pub struct TarError {
    /// Byte offset in the archive of the header at fault.
    pub offset: u64,
    /// What went wrong.
    pub kind: TarErrorKind,
}

impl TarError {
    /// Builds an error.
    pub fn new(offset: u64, kind: TarErrorKind) -> Self {
        TarError { offset, kind }
    }
}

impl Diagnostic for TarError {
    fn kind(&self) -> &'static str {
        self.kind.kind()
    }
    fn class(&self) -> ErrorClass {
        self.kind.class()
    }
    fn offset(&self) -> Option<u64> {
        Some(self.offset)
    }
}

/// Why a gzip stream could not be decompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GzipError {
    /// It would expand past the limit.
    #[error("gzip stream expands past the size limit")]
    TooBig,
    /// Not a gzip stream, or a broken one.
    #[error("{0}")]
    Corrupt(String),
}

impl Diagnostic for GzipError {
    fn kind(&self) -> &'static str {
        match self {
            GzipError::TooBig => "gzip_too_big",
            GzipError::Corrupt(_) => "gzip_corrupt",
        }
    }
    fn class(&self) -> ErrorClass {
        match self {
            GzipError::TooBig => ErrorClass::Limit,
            GzipError::Corrupt(_) => ErrorClass::InvalidInput,
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    #[test]
    fn messages_and_kinds() {
        let e = ZipError::new(7, ZipErrorKind::Truncated { what: "entry data" });
        assert_eq!(
            e.to_string(),
            "zip error at byte 7: truncated or out-of-bounds entry data"
        );
        assert_eq!(Diagnostic::kind(&e), "zip_truncated");
        assert_eq!(e.offset(), Some(7));
        let limit = ZipErrorKind::Invalid {
            what: "entry size",
            reason: "too big".into(),
        };
        assert_eq!(limit.class(), ErrorClass::Limit);
        let t = TarError::new(512, TarErrorKind::BadChecksum);
        assert_eq!(
            t.to_string(),
            "tar error at byte 512: header checksum mismatch"
        );
        assert_eq!(Diagnostic::kind(&t), "tar_bad_checksum");
        assert_eq!(GzipError::TooBig.class(), ErrorClass::Limit);
        assert_eq!(
            Diagnostic::kind(&InspectError::Unsupported),
            "zip_member_unsupported"
        );
    }
}
