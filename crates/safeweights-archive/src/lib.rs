//! # safeweights-archive
//!
//! The archive containers model files come in, read strictly and without
//! trusting a single field: zip (PyTorch checkpoints, `.npz`, `.keras`),
//! tar (legacy PyTorch checkpoints, bundles) and gzip.
//!
//! - [`zip`]: [`ZipArchive`] reads a zip through positioned reads on a
//!   [`safeweights::Source`] (a memory map, `pread` on a file, bytes in
//!   memory), so a 20 GB checkpoint is never loaded whole. It opens an
//!   archive two ways: [`ZipArchive::new`] for loaders, where anything that
//!   would make the reader guess is an error, and [`ZipArchive::inspect`]
//!   for scanners, where every oddity (duplicate names, overlapping members,
//!   prepended data, local headers that disagree with the directory, ...)
//!   becomes an [`Anomaly`] and reading goes on. [`ZipWriter`] streams
//!   stored entries aligned like PyTorch's writer.
//! - [`tar`]: [`tar::parse`] walks ustar, pax and GNU long-name headers
//!   without touching member data; every member it returns lies inside the
//!   source.
//! - [`gzip`]: [`gzip::gunzip`] decompresses the first member of a gzip
//!   stream within a size limit.
//!
//! Deflate is `flate2`'s, CRC-32 is `crc32fast`'s. Errors ([`error`]) are
//! typed, carry the offset in the archive or the member name, and implement
//! [`safeweights::Diagnostic`].
//!
//! ```
//! use std::io::{Cursor, Write};
//! use safeweights::MemorySource;
//! use safeweights_archive::{ZipArchive, ZipWriter};
//!
//! let mut w = ZipWriter::new(Cursor::new(Vec::new()));
//! w.entry("archive/data.pkl", b"\x80\x02N.")?;
//! let bytes = w.finish()?.into_inner();
//!
//! let zip = ZipArchive::new(MemorySource::new(bytes))?;
//! let e = zip.entry("archive/data.pkl").expect("member");
//! assert_eq!(zip.read(e, 1 << 20)?, b"\x80\x02N.");
//! assert!(zip.anomalies().is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Crate features
//!
//! None: the crate always builds the same.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod error;
pub mod gzip;
mod inflate;
mod slice;
pub mod tar;
pub mod zip;

pub use error::{GzipError, InspectError, TarError, TarErrorKind, ZipError, ZipErrorKind};
pub use slice::SliceSource;
pub use zip::{Anomaly, Entry, MemberReader, Method, ZipArchive, ZipWriter};
