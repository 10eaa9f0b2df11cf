//! # safeweights
//!
//! The safetensors format, exactly: a strict reader, zero-copy views, Python-style
//! slicing with minimal byte ranges, a streaming atomic writer whose output is
//! byte-identical to the reference implementation, and sharded checkpoints.
//!
//! A safetensors file is an 8-byte little-endian header length `N`, `N` bytes of
//! JSON describing each tensor (`dtype`, `shape`, `data_offsets`) plus optional
//! `__metadata__`, then the raw little-endian tensor bytes. Reading it runs no
//! code. This crate enforces every rule the reference enforces and, by default,
//! a few more (duplicate keys, reserved and control-character names); see
//! [`ParseOptions::lenient`] to read exactly what the reference reads.
//!
//! ```
//! use safeweights::{serialize, Dtype, SafeTensors, TensorRef};
//!
//! let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|x| x.to_le_bytes()).collect();
//! let bytes = serialize(
//!     &[TensorRef { name: "w", dtype: Dtype::F32, shape: &[2, 2], data: &data }],
//!     None,
//! )?;
//! let file = SafeTensors::deserialize(&bytes)?;
//! let w = file.tensor("w")?;
//! assert_eq!(w.shape(), &[2, 2]);
//! assert_eq!(w.data(), &data[..]);
//! # Ok::<(), safeweights::Error>(())
//! ```
//!
//! ## Reading from files
//! [`SafeTensorsFile::open`] reads and validates the header only; tensors are
//! views over a memory map ([`Backend::Mmap`]) or read with `pread`
//! ([`Backend::Pread`]). Every reader sits on a [`Source`], so other byte
//! sources (memory, remote) plug in.
//!
//! ## Summaries, comparing and merging
//! [`Checkpoint::summary`] counts files, tensors, dtypes and bytes;
//! [`diff::compare`] compares two checkpoints tensor by tensor, streaming the
//! bytes; [`sharded::merge`] (or [`Checkpoint::merge_into`]) writes a sharded
//! checkpoint back into one file, and [`sharded::write_sharded`] splits one.
//!
//! ## Crate features
//! None yet: the crate depends only on `serde` (results serialise as the
//! CLI's JSON), `serde_json`, `memchr`, `memmap2`, `libc` and `thiserror`.
#![deny(missing_docs)]
#![deny(unsafe_code)]

#[allow(unsafe_code)]
mod atomic;
pub mod decode;
pub mod diagnostic;
pub use atomic::{remove_stale_siblings, temp_sibling_prefix};
pub mod diff;
mod dtype;
mod error;
pub mod folder;
mod header;
mod json;
#[allow(unsafe_code)]
mod reader;
pub mod sharded;
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod sigbus;
mod slice;
pub mod sniff;
#[allow(unsafe_code)]
pub mod source;
pub mod summary;
mod text;
mod writer;

pub use diagnostic::{chain_message, Diagnostic, ErrorClass};
pub use dtype::{element_count, Dtype, DtypeInfo, DtypeKind, UnknownDtype, DTYPES};
pub use error::{Error, HeaderError, Result, ShardError, SliceError};
pub use header::{
    parse_prefix, Header, Metadata, ParseOptions, TensorInfo, MAX_HEADER_LEN, METADATA_KEY,
};
pub use reader::{Backend, OpenOptions, SafeTensors, SafeTensorsFile, TensorView};
pub use sharded::{Checkpoint, ShardIndex};
pub use slice::{DimSelection, ResolvedSlice, SliceIndex};
pub use source::{FileSource, MemorySource, MmapSource, Source};
pub use text::{escape_control, escape_control_keep_newlines, is_terminal_control};
pub use writer::{
    serialize, serialize_with, write_file, write_file_with, AtomicFile, Layout, LayoutEntry,
    StreamingWriter, TensorRef, TensorSpec, TensorWriter, WriteOptions,
};
