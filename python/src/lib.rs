//! `safeweights._safeweights`: the native half of the `safeweights` Python
//! package, a drop-in stand-in for `safetensors` on the safeweights core.
//!
//! Modules: [`errors`] (exception classes), [`spec`] (`TensorSpec`),
//! [`serialize`] (`serialize`, `serialize_file`, `deserialize`), [`file`]
//! (`_File`, behind `safe_open`), [`index`] (Python indexing → slices),
//! [`convert`] (`convert`), [`diff`] (`diff`, `merge`), [`scan`] (`scan`, `ScanReport`), [`load`] (the
//! parallel loader: `_Plan`, `_Completions`), [`pyjson`] (JSON values → Python).

use pyo3::prelude::*;

mod convert;
mod diff;
mod errors;
mod file;
mod index;
mod load;
mod pyjson;
mod scan;
mod serialize;
mod spec;

/// The native module.
#[pymodule]
fn _safeweights(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("SafetensorError", py.get_type::<errors::SafetensorError>())?;
    m.add(
        "SafetensorHeaderError",
        py.get_type::<errors::SafetensorHeaderError>(),
    )?;
    m.add(
        "TensorNotFoundError",
        py.get_type::<errors::TensorNotFoundError>(),
    )?;
    m.add(
        "SafetensorIOError",
        py.get_type::<errors::SafetensorIOError>(),
    )?;
    m.add("ConversionError", py.get_type::<errors::ConversionError>())?;
    errors::declare_fields(py)?;
    m.add_class::<spec::TensorSpec>()?;
    m.add_class::<scan::ScanReport>()?;
    m.add_class::<load::Plan>()?;
    m.add_class::<load::Completions>()?;
    m.add_function(wrap_pyfunction!(convert::convert, m)?)?;
    m.add_function(wrap_pyfunction!(scan::scan, m)?)?;
    m.add_function(wrap_pyfunction!(diff::diff, m)?)?;
    m.add_function(wrap_pyfunction!(diff::merge, m)?)?;
    m.add_function(wrap_pyfunction!(load::_cuda_status, m)?)?;
    m.add_function(wrap_pyfunction!(load::_parse_device, m)?)?;
    m.add_function(wrap_pyfunction!(load::_cuda_release_pinned, m)?)?;
    m.add_class::<file::File>()?;
    m.add_function(wrap_pyfunction!(serialize::serialize, m)?)?;
    m.add_function(wrap_pyfunction!(serialize::serialize_file, m)?)?;
    m.add_function(wrap_pyfunction!(serialize::deserialize, m)?)?;
    Ok(())
}
