//! Zip: a strict reader built for untrusted archives, and a streaming writer.
//!
//! # Reading
//!
//! [`ZipArchive`] reads the end of central directory (with zip64), the
//! central directory and each local header, supports stored and deflated
//! entries, checks CRC-32, and records [`Anomaly`]s for scanners:
//! encryption, odd flags, unsupported methods, path traversal, duplicate
//! names, local header or data descriptor disagreeing with the central
//! directory, overlapping members, data before, between or after the
//! members. Data is read through [`safeweights::Source`] positioned reads,
//! so storages need not be loaded whole.
//!
//! Two ways to open an archive:
//! - [`ZipArchive::new`] (loaders): structural problems that would make the
//!   reader guess (a missing local header, data past the end of the file, a
//!   stored entry whose sizes disagree, data prepended to the archive, bytes
//!   after the end record) are errors;
//! - [`ZipArchive::inspect`] (scanners): only an unfindable or unreadable
//!   directory is an error; everything else is recorded as an anomaly and the
//!   archive is read the way readers that locate the directory from the end
//!   of the file read it (prepended data shifts every offset).
//!
//! # Writing
//!
//! [`ZipWriter`] streams stored (uncompressed) entries, data aligned to 64
//! bytes like PyTorch's writer, zip64 where sizes or offsets need it.

mod anomaly;
mod entry;
mod locate;
mod member;
mod read;
mod spec;
mod write;

pub use anomaly::Anomaly;
pub use entry::{Entry, Method};
pub use locate::find_embedded;
pub use member::MemberReader;
pub use read::{ZipArchive, ZipResult};
pub use spec::{crc32, escapes_extraction};
pub use write::ZipWriter;
