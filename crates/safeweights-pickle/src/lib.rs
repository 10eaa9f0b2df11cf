//! Data-only pickle decoding and PyTorch checkpoint reading.
//!
//! **Nothing in this crate executes code from a file.** Pickles are decoded
//! by a Rust state machine; the only "callables" it understands are a fixed
//! allow-list of torch/numpy/collections constructors that `torch.save`
//! emits for tensors and state dicts, each reimplemented as a pure data
//! constructor. Any other global is an error naming `module.name` and the
//! byte offset.
//!
//! Layers:
//! - [`opcodes`]: opcode table and a zero-copy decoder ([`opcodes::Ops`]) that
//!   yields `(offset, opcode, argument)` for every opcode of protocols 0-5 and
//!   can keep going past STOP (for scanners).
//! - [`eval`]: the data-only evaluator, producing a [`value::Graph`] of
//!   [`value::Value`]s and arena [`value::Node`]s (lists, dicts, tensors,
//!   storages, dtypes, numpy arrays), bounded by [`eval::Limits`].
//! - [`torch`]: PyTorch checkpoints (zip format, legacy pre-1.6 format,
//!   legacy pre-0.4 tar format),
//!   [`torch::TorchCheckpoint`] with flattened named tensors and JSON leaves,
//!   and [`torch::TorchCheckpoint::copy_contiguous`] to stream tensor bytes.
//!   Containers are read with `safeweights-archive` (re-exported as
//!   [`archive`]) through a [`safeweights::Source`]; its errors are wrapped
//!   in [`Error`] with the file name.
//!
//! Every error implements [`safeweights::Diagnostic`].
#![deny(missing_docs)]

pub mod dtype;
pub mod error;
pub mod eval;
pub mod opcodes;
pub mod value;

pub use dtype::TorchDtype;
pub use error::{Error, PickleError, PickleErrorKind, Result};
pub use eval::{evaluate, Limits};
pub use safeweights_archive as archive;
pub use safeweights_archive::{TarErrorKind, ZipErrorKind};
pub use value::{Graph, Node, ObjId, Tensor, Value};
pub mod torch;

pub use torch::{Format, NamedTensor, TorchCheckpoint};
