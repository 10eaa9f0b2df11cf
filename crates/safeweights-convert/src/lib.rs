//! # safeweights-convert
//!
//! Converts PyTorch pickle checkpoints (`.bin/.pt/.pth/.ckpt`, zip or
//! legacy format), NumPy `.npy`/`.npz` and Hugging Face model folders to
//! safetensors, and safetensors back to a PyTorch zip checkpoint (readable
//! by `torch.load(..., weights_only=True)`) or an `.npz`, **without
//! executing any code from the input**: pickles are decoded by the
//! data-only evaluator of `safeweights-pickle`, NumPy headers by a strict
//! parser here.
//!
//! [`convert`] picks the reader by the source's *content* and the writer by
//! the destination's extension. A folder is converted checkpoint by
//! checkpoint under the names its libraries load: transformers
//! (`pytorch_model.bin` → `model.safetensors`), diffusers pipelines and
//! their component folders (`diffusion_pytorch_model.bin` →
//! `diffusion_pytorch_model.safetensors`), peft (`adapter_model.bin` →
//! `adapter_model.safetensors`), sentence-transformers modules, with weight
//! variants (`.fp16`) kept apart. Tensors are streamed one at a time
//! (strided views copied contiguous in bounded chunks); after writing,
//! every tensor is read back from the output and compared bit for bit with
//! the source, and on any failure the output is removed.
//!
//! ```no_run
//! use safeweights_convert::{convert, ConvertOptions};
//! let summary = convert("pytorch_model.bin", "model.safetensors", &ConvertOptions::new())?;
//! println!("{} tensors, {} bytes", summary.tensors, summary.bytes);
//! # Ok::<(), safeweights_convert::ConvertError>(())
//! ```
//!
//! ## Model folders
//! The other files of a Hugging Face folder (config, tokenizer ...) are
//! copied only through symlinks that stay inside the folder (or its cache
//! repository's `blobs/`), each judged by `safeweights-scan` first (no
//! pickle, no NumPy object array, nothing at medium or above), and the
//! finished output is scanned again. [`copy_companion_files`] applies the
//! same rules for commands that rewrite a folder's safetensors weights. A
//! zip-based source the scanner reports zip anomalies in is refused unless
//! [`ConvertOptions::allow_zip_anomalies`].
//!
//! ## Shared tensors
//! Names that are exact aliases of one storage view (tied weights) are
//! written once: the kept name is the one the reference's
//! `_remove_duplicate_names` keeps (first by sort order among names
//! covering the whole storage), and each dropped name is recorded in
//! `__metadata__` as `{dropped: kept}` like `safetensors.torch.save_model`.
//! In a Hugging Face folder the kept name is the one transformers keeps
//! instead: not a `_tied_weights_keys` name (`lm_head.weight`), then the
//! first in state-dict order, so GPT-2 keeps `transformer.wte.weight`.
//! Different views that overlap one storage (a weight and its transpose)
//! are each written as their own contiguous copy so nothing is lost; the
//! reference would drop them. [`ConvertOptions::keep_shared`] writes every
//! name as its own copy.
#![deny(missing_docs)]
#![deny(unsafe_code)]

mod companions;
mod convert;
mod error;
mod folder;
mod hf_layout;
mod npy;
mod npy_source;
mod options;
mod safetensors_source;
mod source;
mod ties;
mod torch_source;
mod torchw;

use std::path::Path;
use std::time::Instant;

pub use companions::{copy_companion_files, judge, Companions};
pub use convert::LEAVES_METADATA_KEY;
pub use error::{ConvertError, Result};
pub use options::{
    ConvertOptions, ConvertSummary, DroppedAlias, Leaf, Phase, Progress, ProgressFn, SkippedFile,
};

/// Converts `src` to `dst`.
///
/// The source kind is read from its bytes: a PyTorch checkpoint (zip or
/// legacy), `.npy`, `.npz`, safetensors, or a folder (a Hugging Face model
/// folder with `pytorch_model.bin` or its shards and index). The target is
/// chosen by `dst`'s extension: `.safetensors`, `.bin`/`.pt`/`.pth`/`.ckpt`
/// (PyTorch zip), `.npz`; for a folder source `dst` is the output folder.
///
/// An existing `dst` is an error unless [`ConvertOptions::overwrite`] is set.
pub fn convert(
    src: impl AsRef<Path>,
    dst: impl AsRef<Path>,
    options: &ConvertOptions,
) -> Result<ConvertSummary> {
    let start = Instant::now();
    let (src, dst) = (src.as_ref(), dst.as_ref());
    let meta = fs_err::metadata(src).map_err(error::io_err(src))?;
    let mut summary = if meta.is_dir() {
        folder::convert_folder(src, dst, options)?
    } else if meta.is_file() {
        convert::convert_file(src, dst, options)?
    } else {
        // A FIFO or a device: opening it could wait forever for a writer.
        return Err(ConvertError::Unsupported {
            file: src.to_path_buf(),
            reason: "not a regular file (a FIFO, socket or device); give a file or a folder".into(),
        });
    };
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

/// Parses the header at the start of a `.npy` file image, as the converter
/// does before reading any data: the shape and the data's offset and byte
/// length, or why the header is refused. For fuzzing and tools; conversion
/// itself goes through [`convert`].
pub fn npy_header(head: &[u8]) -> std::result::Result<(Vec<usize>, u64, u64), String> {
    npy::parse_header(head).map(|h| (h.shape, h.data_offset, h.nbytes))
}
