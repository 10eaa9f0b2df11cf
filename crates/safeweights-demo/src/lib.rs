//! # safeweights-demo
//!
//! The material of `safeweights demo`, the guided tour of the toolkit:
//!
//! - [`model`]: a small, deterministic, transformer-like sample model (BF16,
//!   F16, F32, FP8 E4M3 with its scale, I64), written with the streaming
//!   writer in chunks;
//! - [`hostile`]: the files the tour shows being caught: corrupted copies of
//!   the sample ([`hostile::CORRUPTIONS`], each with the validation rule that
//!   must report it) and a PyTorch-style zip named `.safetensors` whose pickle
//!   calls `os.system` ([`hostile::write_disguised_pickle_zip`]);
//! - [`tour`]: the tour's steps as data ([`tour::Step`]), where each step
//!   works ([`tour::Workdir`]) and the parameters it uses.
//!
//! The command line runs the steps, calls the libraries and prints; nothing
//! here prints.
//!
//! ```
//! use safeweights::Checkpoint;
//! use safeweights_demo::{model, tour::Workdir};
//!
//! let dir = tempfile::tempdir()?;
//! let work = Workdir::new(dir.path());
//! let written = model::write_sample(&work.original())?;
//! let ckpt = Checkpoint::open(&written.path)?;
//! assert_eq!(ckpt.len(), model::sample_specs().len());
//! assert_eq!(written.params, 2_361_634);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Crate features
//! None. Depends on `safeweights`, `safeweights-convert` (its zip writer),
//! `half` (F16 and BF16 rounding), `serde_json` and `thiserror`.
#![deny(missing_docs)]
#![deny(unsafe_code)]

mod error;
pub mod hostile;
pub mod model;
pub mod tour;

pub use error::{DemoError, Result};
