//! `scan`: `safeweights_scan::scan_paths` with the report as a `ScanReport`.

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use safeweights_scan::{
    render_json, render_sarif, scan_paths, Policy, Report, ScanOptions, Severity,
};

/// The result of `safeweights.scan`: findings, the files looked at with the
/// format detected from their bytes, errors, and the CI verdict.
///
/// Truthy (and `.ok`) when `.exit_code == 0`: every path could be scanned and
/// no finding is at or above `fail_on`.
#[pyclass(frozen, module = "safeweights._safeweights")]
pub struct ScanReport {
    report: Report,
    fail_on: Severity,
}

#[pymethods]
impl ScanReport {
    /// Findings in scan order, each a dict with `severity` (`"info"` ...
    /// `"critical"`), `rule`, `file`, `member` (path inside an archive, or
    /// None), `what`, `why`, `offset` (or None) and `fix` (or None).
    #[getter]
    fn findings(&self, py: Python<'_>) -> PyResult<PyObject> {
        crate::pyjson::serialize_to_py(py, &self.report.findings)
    }

    /// Files and archive members looked at: dicts with `file`, `member`,
    /// `format` (detected from the content) and `size`.
    #[getter]
    fn files(&self, py: Python<'_>) -> PyResult<PyObject> {
        crate::pyjson::serialize_to_py(py, &self.report.files)
    }

    /// Paths that could not be scanned: dicts with `file` and `message`.
    #[getter]
    fn errors(&self, py: Python<'_>) -> PyResult<PyObject> {
        crate::pyjson::serialize_to_py(py, &self.report.errors)
    }

    /// Counts: `files`, `objects`, `findings` (per severity), `highest`
    /// (severity or None) and `errors`.
    #[getter]
    fn summary(&self, py: Python<'_>) -> PyResult<PyObject> {
        crate::pyjson::serialize_to_py(py, &self.report.summary)
    }

    /// The threshold this report is judged by.
    #[getter]
    fn fail_on(&self) -> &'static str {
        self.fail_on.as_str()
    }

    /// The highest severity found, or None.
    #[getter]
    fn highest(&self) -> Option<&'static str> {
        self.report.highest().map(Severity::as_str)
    }

    /// As the CLI's: 2 if a path could not be scanned, else 1 if a finding is
    /// at or above `fail_on`, else 0.
    #[getter]
    fn exit_code(&self) -> i32 {
        safeweights_scan::exit_code(&self.report, self.fail_on)
    }

    /// Whether `exit_code` is 0.
    #[getter]
    fn ok(&self) -> bool {
        self.exit_code() == 0
    }

    fn __bool__(&self) -> bool {
        self.ok()
    }

    /// The report as JSON (the CLI's `--format json` schema).
    fn to_json(&self) -> String {
        render_json(&self.report)
    }

    /// The report as SARIF 2.1.0 JSON (for code-scanning dashboards).
    fn to_sarif(&self) -> String {
        render_sarif(&self.report)
    }

    fn __repr__(&self) -> String {
        let c = &self.report.summary.findings;
        format!(
            "<ScanReport files={} critical={} high={} medium={} low={} info={} errors={} exit_code={}>",
            self.report.summary.files,
            c.critical,
            c.high,
            c.medium,
            c.low,
            c.info,
            self.report.errors.len(),
            self.exit_code()
        )
    }
}

/// One path, or a list of paths.
fn paths(obj: &Bound<'_, PyAny>) -> PyResult<Vec<PathBuf>> {
    if let Ok(p) = obj.extract::<PathBuf>() {
        return Ok(vec![p]);
    }
    obj.try_iter()?
        .map(|item| item?.extract::<PathBuf>())
        .collect()
}

/// Scans files and folders (recursively) for model files that can run code,
/// by content; nothing is unpickled or executed and tensor payloads are not
/// read.
///
/// `policy="safetensors-only"` also flags every weights file that is not
/// safetensors (GGUF / ONNX accepted with `allow_gguf` / `allow_onnx`).
/// `fail_on` (`"info"`, `"low"`, `"medium"`, `"high"`, `"critical"`) sets the
/// threshold for `ok` and `exit_code`.
#[pyfunction]
#[pyo3(signature = (path_or_paths, *, policy = "default", fail_on = "medium", allow_gguf = false, allow_onnx = false))]
pub fn scan(
    py: Python<'_>,
    path_or_paths: &Bound<'_, PyAny>,
    policy: &str,
    fail_on: &str,
    allow_gguf: bool,
    allow_onnx: bool,
) -> PyResult<ScanReport> {
    let paths = paths(path_or_paths)?;
    let policy: Policy = policy
        .parse()
        .map_err(|e: safeweights_scan::UnknownPolicy| PyValueError::new_err(e.to_string()))?;
    let fail_on: Severity = fail_on
        .parse()
        .map_err(|e: safeweights_scan::UnknownSeverity| PyValueError::new_err(e.to_string()))?;
    let options = ScanOptions::new()
        .policy(policy)
        .fail_on(fail_on)
        .allow_gguf(allow_gguf)
        .allow_onnx(allow_onnx);
    let report = py.allow_threads(|| scan_paths(&paths, &options));
    Ok(ScanReport { report, fail_on })
}
