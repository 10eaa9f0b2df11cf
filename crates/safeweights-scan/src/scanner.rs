//! The driver: identifies each file and member by content and dispatches.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use safeweights::{Header, HeaderError, ParseOptions};
use safeweights_archive::zip::{crc32, Anomaly, Entry, Method, ZipArchive};
use safeweights_archive::{gzip, tar, GzipError, InspectError, SliceSource, ZipError};

use crate::formats::{self, sniff};
use crate::options::{Policy, ScanOptions};
use crate::pickle::{self, RawFinding, Walk};
use crate::report::{Finding, Format, Report, ScanError, ScannedFile};
use crate::rules::RuleId;
use crate::severity::Severity;

/// Bytes read to identify an archive member.
const SNIFF: usize = 4096;

pub(crate) struct Scanner<'o> {
    opts: &'o ScanOptions,
    pub report: Report,
    file: String,
    dir: Option<PathBuf>,
    members: usize,
    expanded: u64,
    hit_members: bool,
    hit_expanded: bool,
}

fn join(path: &[String]) -> Option<String> {
    if path.is_empty() {
        None
    } else {
        Some(path.join("!"))
    }
}

impl<'o> Scanner<'o> {
    pub fn new(opts: &'o ScanOptions, file: String, dir: Option<PathBuf>) -> Self {
        Scanner {
            opts,
            report: Report::new(),
            file,
            dir,
            members: 0,
            expanded: 0,
            hit_members: false,
            hit_expanded: false,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        path: &[String],
        severity: Severity,
        rule: RuleId,
        what: impl Into<String>,
        why: impl Into<String>,
        offset: Option<u64>,
        fix: Option<String>,
    ) {
        self.report.findings.push(Finding {
            severity,
            rule,
            file: self.file.clone(),
            member: join(path),
            what: what.into(),
            why: why.into(),
            offset,
            fix,
        });
    }

    fn add_raw(&mut self, path: &[String], raws: Vec<RawFinding>, base: u64) {
        for r in raws {
            self.add(
                path,
                r.severity,
                r.rule,
                r.what,
                r.why,
                r.offset.map(|o| o + base),
                None,
            );
        }
    }

    fn remaining(&self) -> u64 {
        self.opts
            .limits
            .max_expanded_bytes
            .saturating_sub(self.expanded)
    }

    fn limit_expanded(&mut self, path: &[String]) {
        if !self.hit_expanded {
            self.hit_expanded = true;
            let max = self.opts.limits.max_expanded_bytes;
            self.add(
                path,
                Severity::Medium,
                RuleId::LimitExpandedSize,
                format!("expanding this member would pass the limit of {max} expanded bytes; it and later large members were not scanned"),
                "an archive bomb can exhaust memory or disk; the unscanned content may hide anything",
                None,
                None,
            );
        }
    }

    /// Counts a member; false (and a finding, once) past the limit.
    fn count_member(&mut self, path: &[String]) -> bool {
        self.members += 1;
        if self.members > self.opts.limits.max_members {
            if !self.hit_members {
                self.hit_members = true;
                let max = self.opts.limits.max_members;
                self.add(
                    path,
                    Severity::Medium,
                    RuleId::LimitMembers,
                    format!("more than {max} archive members: the rest were not scanned"),
                    "huge member counts are used to exhaust scanners; unscanned members may hide anything",
                    None,
                    None,
                );
            }
            return false;
        }
        true
    }

    /// Scans one blob (a file or a member) at `path` (empty for the file itself).
    pub fn blob(&mut self, data: &[u8], path: &mut Vec<String>, depth: usize, in_weights: bool) {
        let idx = self.report.files.len();
        self.report.files.push(ScannedFile {
            file: self.file.clone(),
            member: join(path),
            format: Format::Unknown,
            size: data.len() as u64,
        });
        let mut fmt = sniff(data);
        fmt = match fmt {
            Format::Zip => self.zip(data, path, depth),
            Format::Tar => {
                self.tar(data, path, depth);
                fmt
            }
            Format::Gzip => {
                self.gzip(data, path, depth);
                fmt
            }
            Format::SevenZip | Format::Compressed => {
                let kind = if fmt == Format::SevenZip {
                    "7z archive"
                } else {
                    "xz/bzip2/zstd stream"
                };
                self.add(
                    path,
                    Severity::Medium,
                    RuleId::ArchiveCannotInspect,
                    format!("{kind}: cannot inspect its content"),
                    "the scanner does not open this format; it may hold pickles or other code",
                    Some(0),
                    None,
                );
                fmt
            }
            Format::Npy => {
                self.npy(data, path);
                fmt
            }
            Format::Hdf5 => {
                self.keras_text(data, path, "HDF5 model_config");
                fmt
            }
            Format::Safetensors => {
                self.safetensors(data, path, depth);
                fmt
            }
            Format::Pickle => self.pickle(data, path, pickle::Context::default(), true),
            Format::Onnx => {
                self.onnx(data, path);
                fmt
            }
            Format::Gguf => fmt,
            _ => {
                if ZipArchive::inspect(SliceSource::new(data)).is_ok() {
                    // Zip readers that find the directory from the end accept this.
                    self.zip(data, path, depth)
                } else {
                    Format::Unknown
                }
            }
        };
        self.report.files[idx].format = fmt;
        self.policy(fmt, path, in_weights);
    }

    fn policy(&mut self, fmt: Format, path: &[String], in_weights: bool) {
        if self.opts.policy != Policy::SafetensorsOnly || in_weights || !fmt.is_weights() {
            return;
        }
        let allowed = fmt == Format::Safetensors
            || (fmt == Format::Gguf && self.opts.allow_gguf)
            || (fmt == Format::Onnx && self.opts.allow_onnx);
        if allowed {
            return;
        }
        let fix = if path.is_empty() {
            format!("safeweights convert {0} {0}.safetensors", self.file)
        } else {
            let m = path.last().map(String::as_str).unwrap_or("member");
            format!("extract {m} from the archive, then: safeweights convert {m} {m}.safetensors")
        };
        self.add(
            path,
            Severity::High,
            RuleId::PolicyNotSafetensors,
            format!(
                "{fmt} weights file: only safetensors is allowed by the safetensors-only policy"
            ),
            "non-safetensors weight formats can carry code or need code to load",
            None,
            Some(fix),
        );
    }

    fn recurse(
        &mut self,
        data: &[u8],
        path: &mut Vec<String>,
        name: String,
        depth: usize,
        in_weights: bool,
    ) {
        path.push(name);
        if depth + 1 > self.opts.limits.max_depth {
            let max = self.opts.limits.max_depth;
            self.add(
                path,
                Severity::Medium,
                RuleId::LimitDepth,
                format!("archive nesting deeper than {max}: this member was not scanned"),
                "deep nesting is used to hide content from scanners",
                None,
                None,
            );
        } else {
            self.blob(data, path, depth + 1, in_weights);
        }
        path.pop();
    }

    fn pickle(
        &mut self,
        data: &[u8],
        path: &[String],
        ctx: pickle::Context,
        standalone: bool,
    ) -> Format {
        let legacy = pickle::is_torch_legacy(data);
        let walk = if legacy {
            Walk::Pickles(5)
        } else {
            Walk::ToEnd
        };
        let res = pickle::scan(data, walk, &ctx);
        let fmt = if legacy {
            Format::PytorchLegacy
        } else if res.joblib {
            Format::Joblib
        } else {
            Format::Pickle
        };
        let clean = res.findings.is_empty();
        self.add_raw(path, res.findings, 0);
        if clean && standalone {
            let fix = path
                .is_empty()
                .then(|| format!("safeweights convert {0} {0}.safetensors", self.file));
            self.add(
                path,
                Severity::Info,
                RuleId::PickleFormat,
                format!("{fmt} format with only allowlisted globals: convert to safetensors"),
                "pickle-based formats need an unpickler to load; safetensors cannot run code",
                None,
                fix,
            );
        }
        fmt
    }

    fn npy(&mut self, data: &[u8], path: &[String]) {
        let Some(npy) = formats::parse_npy(data) else {
            return;
        };
        if !npy.object {
            return;
        }
        self.add(
            path,
            Severity::Low,
            RuleId::NpyObjectArray,
            format!(
                "NumPy object array ({}): the data is a pickle",
                npy.header.trim()
            ),
            "numpy.load(allow_pickle=True) unpickles it; its content is scanned below",
            Some(npy.data_offset as u64),
            None,
        );
        let body = data.get(npy.data_offset..).unwrap_or_default();
        let res = pickle::scan(body, Walk::ToEnd, &pickle::Context::default());
        self.add_raw(path, res.findings, npy.data_offset as u64);
    }

    fn keras_text(&mut self, data: &[u8], path: &[String], what: &str) {
        let max = usize::try_from(self.opts.limits.max_search_bytes).unwrap_or(usize::MAX);
        let window = &data[..data.len().min(max)];
        let hits = formats::keras_lambdas(window);
        if let Some(&first) = hits.first() {
            self.add(
                path,
                Severity::High,
                RuleId::KerasLambda,
                format!("{what} has {} Lambda layer(s)", hits.len()),
                "Keras Lambda layers carry serialized Python bytecode that runs when the model is loaded (safe_mode off) or called",
                Some(first),
                None,
            );
        }
        if window.len() < data.len() {
            self.add(
                path,
                Severity::Info,
                RuleId::ScanPartial,
                format!("only the first {max} bytes were searched for Lambda layers"),
                "raise the search limit to search the whole file",
                None,
                None,
            );
        }
    }

    fn safetensors(&mut self, data: &[u8], path: &mut Vec<String>, depth: usize) {
        let strict = ParseOptions::strict();
        let mut err = Header::parse_file_bytes(data, &strict).err();
        if let Some(HeaderError::DuplicateKey { key, scope }) = &err {
            self.add(
                path,
                Severity::High,
                RuleId::SafetensorsDuplicateKey,
                format!("duplicate key {key:?} in {scope}"),
                "readers disagree on which value wins: the reference keeps the last one, a checker may see the first",
                Some(8),
                None,
            );
            err = Header::parse_file_bytes(data, &ParseOptions::lenient()).err();
        }
        match err {
            None | Some(HeaderError::DuplicateKey { .. }) => {}
            Some(HeaderError::TrailingBytes { expected, actual }) => {
                let n = safeweights::parse_prefix(data, data.len() as u64, &strict).unwrap_or(0);
                let start = 8 + n + expected;
                self.add(
                    path,
                    Severity::High,
                    RuleId::SafetensorsTrailingBytes,
                    format!(
                        "{} bytes after the end of the last tensor (file offset {start})",
                        actual - expected
                    ),
                    "a polyglot: the same file can be read as another format (zip, pickle) by other loaders; the extra bytes are scanned",
                    Some(start),
                    None,
                );
                if let Some(tail) = usize::try_from(start).ok().and_then(|s| data.get(s..)) {
                    self.recurse(tail, path, format!("<trailing@{start}>"), depth, false);
                }
            }
            Some(e) => {
                self.add(
                    path,
                    Severity::Medium,
                    RuleId::SafetensorsInvalid,
                    format!("safetensors header fails validation: {e}"),
                    "a file that does not validate may be read differently by different loaders",
                    Some(0),
                    None,
                );
            }
        }
    }

    fn onnx(&mut self, data: &[u8], path: &[String]) {
        for (loc, off) in formats::onnx_external_locations(data) {
            let mut escapes = formats::path_escapes(&loc);
            let mut how = "is absolute or climbs out with '..'";
            if !escapes && path.is_empty() {
                if let Some(dir) = &self.dir {
                    if let (Ok(d), Ok(target)) = (dir.canonicalize(), dir.join(&loc).canonicalize())
                    {
                        if !target.starts_with(&d) {
                            escapes = true;
                            how = "resolves (through a symlink) outside the model folder";
                        }
                    }
                }
            }
            if escapes {
                self.add(
                    path,
                    Severity::High,
                    RuleId::OnnxExternalDataEscape,
                    format!("external data location {loc:?} {how}"),
                    "loading reads (and may send) any file the process can read",
                    Some(off),
                    None,
                );
            }
        }
    }

    fn gzip(&mut self, data: &[u8], path: &mut Vec<String>, depth: usize) {
        match gzip::gunzip(data, self.remaining()) {
            Ok(g) => {
                self.expanded += g.data.len() as u64;
                let name = g.name.unwrap_or_else(|| "<gunzip>".into());
                self.recurse(&g.data, path, name, depth, false);
            }
            Err(GzipError::TooBig) => self.limit_expanded(path),
            Err(GzipError::Corrupt(m)) => self.add(
                path,
                Severity::Medium,
                RuleId::GzipMalformed,
                format!("gzip stream cannot be decompressed: {m}"),
                "content that cannot be inspected may hide anything",
                Some(0),
                None,
            ),
        }
    }

    fn tar(&mut self, data: &[u8], path: &mut Vec<String>, depth: usize) {
        let t = tar::parse_bytes(data, self.opts.limits.max_members);
        if let Some(err) = &t.error {
            self.add(
                path,
                Severity::Medium,
                RuleId::TarMalformed,
                format!(
                    "tar archive is broken at offset {}: {}",
                    err.offset, err.kind
                ),
                "readers may disagree on what the archive holds",
                Some(err.offset),
                None,
            );
        }
        for e in t.entries {
            path.push(e.name.clone());
            let counted = self.count_member(path);
            if !counted {
                path.pop();
                break;
            }
            if formats::path_escapes(&e.name) {
                self.add(
                    path,
                    Severity::Medium,
                    RuleId::TarPathTraversal,
                    format!(
                        "member name {:?} is absolute or climbs out with '..'",
                        e.name
                    ),
                    "extracting the archive writes outside the target folder",
                    Some(e.offset),
                    None,
                );
            }
            if (e.kind == b'1' || e.kind == b'2') && formats::path_escapes_from(&e.name, &e.link) {
                self.add(
                    path,
                    Severity::Medium,
                    RuleId::TarPathTraversal,
                    format!("link to {:?} points outside the archive", e.link),
                    "extracting the archive creates a link to an arbitrary file",
                    Some(e.offset),
                    None,
                );
            }
            path.pop();
            if !matches!(e.kind, b'0' | 0 | b'7') {
                continue;
            }
            let (s, n) = (e.offset as usize, e.size as usize);
            let content = &data[s..s + n];
            if sniff(&content[..content.len().min(SNIFF)]) != Format::Unknown
                || content.len() <= SNIFF
            {
                self.recurse(content, path, e.name, depth, false);
            }
        }
    }

    fn zip(&mut self, data: &[u8], path: &mut Vec<String>, depth: usize) -> Format {
        let zip = match ZipArchive::inspect(SliceSource::new(data)) {
            Ok(z) => z,
            Err(ZipError { offset, kind, .. }) => {
                let m = format!("{kind} at offset {offset}");
                self.add(
                    path,
                    Severity::Medium,
                    RuleId::ZipMalformed,
                    format!("zip archive cannot be read: {m}"),
                    "readers may disagree on what the archive holds",
                    None,
                    None,
                );
                return Format::Zip;
            }
        };
        for a in zip.anomalies() {
            let Some(rule) = zip_rule(a) else { continue };
            let mut p = path.clone();
            if let Some(m) = a.member() {
                p.push(m.to_string());
            }
            self.add(
                &p,
                Severity::Medium,
                rule,
                a.to_string(),
                "zip readers (Python zipfile, PyTorch's miniz, unzip) resolve anomalies differently: the scanned content may not be what is loaded",
                Some(a.offset()),
                None,
            );
        }
        let names: HashSet<&str> = zip.entries().iter().map(|e| e.name.as_str()).collect();
        // PyTorch takes the archive name from the first entry's folder.
        let prefix = zip
            .entries()
            .first()
            .and_then(|e| e.name.split_once('/').map(|(p, _)| format!("{p}/")))
            .unwrap_or_default();
        let torch = names.contains(format!("{prefix}data.pkl").as_str());
        let code = format!("{prefix}code/");
        let torchscript = torch
            && (zip.entries().iter().any(|e| e.name.starts_with(&code))
                || names.contains(format!("{prefix}constants.pkl").as_str()));
        let keras = names.contains("config.json")
            && (names.contains("metadata.json") || names.contains("model.weights.h5"));
        let files: Vec<&str> = zip
            .entries()
            .iter()
            .filter(|e| !e.is_dir())
            .map(|e| e.name.as_str())
            .collect();
        let npz = !files.is_empty() && files.iter().all(|n| n.ends_with(".npy"));
        let fmt = if torchscript {
            Format::Torchscript
        } else if torch {
            Format::PytorchZip
        } else if keras {
            Format::Keras
        } else if npz {
            Format::Npz
        } else {
            Format::Zip
        };
        let in_weights = fmt != Format::Zip;
        let data_dir = format!("{prefix}data/");
        let mut code_files = 0usize;
        let mut pickle_clean = true;
        let mut pickles = 0usize;
        for e in zip.entries() {
            path.push(e.name.clone());
            let counted = self.count_member(path);
            path.pop();
            if !counted {
                break;
            }
            if e.is_dir() {
                continue;
            }
            if torch {
                if e.name.starts_with(&data_dir) {
                    continue; // tensor payloads: never read
                }
                if e.name.starts_with(&code) {
                    code_files += 1;
                    continue;
                }
                if e.name.ends_with(".pkl") || e.name.ends_with(".debug_pkl") {
                    if let Some(body) = self.member(&zip, e, path) {
                        path.push(e.name.clone());
                        let idx = self.report.files.len();
                        self.report.files.push(ScannedFile {
                            file: self.file.clone(),
                            member: join(path),
                            format: Format::Pickle,
                            size: body.len() as u64,
                        });
                        let ctx = pickle::Context { torchscript };
                        let before = self.report.findings.len();
                        let f = self.pickle(&body, path, ctx, false);
                        self.report.files[idx].format = f;
                        pickle_clean &= self.report.findings.len() == before;
                        pickles += 1;
                        path.pop();
                    }
                    continue;
                }
            }
            if keras && e.name == "config.json" {
                if let Some(body) = self.member(&zip, e, path) {
                    path.push(e.name.clone());
                    self.keras_text(&body, path, "Keras config.json");
                    path.pop();
                }
                continue;
            }
            // Anything else: identify from its first bytes, open what is interesting.
            let head = match zip.head(e, SNIFF) {
                Ok(h) => h,
                Err(_) => continue, // reported as an anomaly already
            };
            let f = sniff(&head);
            if f == Format::Unknown && !(head.len() < SNIFF && (e.size as usize) <= SNIFF) {
                continue;
            }
            if f == Format::Unknown && head.is_empty() {
                continue;
            }
            if let Some(body) = self.member(&zip, e, path) {
                self.recurse(&body, path, e.name.clone(), depth, in_weights);
            }
        }
        if torchscript && code_files > 0 {
            path.push(code.clone());
            self.add(
                path,
                Severity::High,
                RuleId::TorchscriptCode,
                format!("TorchScript archive contains a program ({code_files} files under {code})"),
                "torch.jit.load compiles and runs this code; it can call any TorchScript operator, including file and process ones",
                None,
                None,
            );
            path.pop();
        } else if torch && pickle_clean && pickles > 0 {
            let fix = path
                .is_empty()
                .then(|| format!("safeweights convert {0} {0}.safetensors", self.file));
            self.add(
                path,
                Severity::Info,
                RuleId::PickleFormat,
                "PyTorch zip checkpoint with only allowlisted globals: convert to safetensors",
                "pickle-based formats need an unpickler to load; safetensors cannot run code",
                None,
                fix,
            );
        }
        fmt
    }

    /// Reads a whole member within the expanded-size budget, checking its CRC.
    fn member<'z>(
        &mut self,
        zip: &'z ZipArchive<SliceSource<'_>>,
        e: &Entry,
        path: &[String],
    ) -> Option<std::borrow::Cow<'z, [u8]>> {
        let mut p = path.to_vec();
        p.push(e.name.clone());
        let at = e.has_local_header.then_some(e.data_offset);
        if e.method == Method::Deflated && e.size > self.remaining() {
            self.limit_expanded(&p);
            return None;
        }
        match zip.read_unverified(e, self.remaining()) {
            Ok(body) => {
                if matches!(body, std::borrow::Cow::Owned(_)) {
                    self.expanded += body.len() as u64;
                }
                let crc = crc32(0, &body);
                if crc != e.crc32 {
                    self.add(
                        &p,
                        Severity::Medium,
                        RuleId::ZipCrcMismatch,
                        format!("CRC-32 of the content is {crc:08x}, the directory says {:08x}", e.crc32),
                        "strict readers refuse the member, lax ones load it: what is loaded may differ from what was checked",
                        at,
                        None,
                    );
                }
                if body.len() as u64 != e.size {
                    self.add(
                        &p,
                        Severity::Medium,
                        RuleId::ZipHeaderMismatch,
                        format!(
                            "member expands to {} bytes, the directory says {}",
                            body.len(),
                            e.size
                        ),
                        "readers that trust the declared size read something else",
                        at,
                        None,
                    );
                }
                Some(body)
            }
            Err(InspectError::TooBig) => {
                self.limit_expanded(&p);
                None
            }
            Err(InspectError::Unsupported) => None, // already an anomaly
            Err(InspectError::Corrupt(m)) => {
                self.add(
                    &p,
                    Severity::Medium,
                    RuleId::ZipMalformed,
                    format!("member cannot be read: {m}"),
                    "content that cannot be inspected may hide anything",
                    at,
                    None,
                );
                None
            }
        }
    }
}

/// Maps a file the scanner is about to judge.
///
/// The scanner maps rather than reads: it touches only the pages it needs (a
/// header, a zip directory, a pickle), which keeps scans of multi-gigabyte
/// weight files to kilobytes of I/O.
#[allow(unsafe_code)]
fn map_untrusted(path: &Path) -> std::io::Result<safeweights::MmapSource> {
    // SAFETY: every byte is treated as hostile: each offset is bounds-checked
    // against the length fixed when the file was mapped, and no check relies
    // on bytes staying equal between two reads. Bytes rewritten during the
    // scan therefore give a verdict on some mixture of old and new content,
    // as any reader racing a writer would; a truncation is caught by the
    // map's SIGBUS guard and reported through `check`, not a crash.
    unsafe { safeweights::MmapSource::open(path) }
}

/// Scans one file on disk.
pub(crate) fn scan_file(path: &Path, opts: &ScanOptions) -> Report {
    let name = path.display().to_string();
    let dir = path.parent().map(|p| {
        if p.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            p.to_path_buf()
        }
    });
    let mut s = Scanner::new(opts, name.clone(), dir);
    s.report.summary.files = 1;
    let err = |m: String| ScanError {
        file: name.clone(),
        message: m,
    };
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => {
            s.report.errors.push(err("not a regular file".into()));
        }
        Ok(m) if m.len() == 0 => s.blob(&[], &mut Vec::new(), 0, false),
        Ok(_) => match map_untrusted(path) {
            Ok(src) => {
                use safeweights::Source;
                match src.as_bytes() {
                    Some(bytes) => s.blob(bytes, &mut Vec::new(), 0, false),
                    None => s.report.errors.push(err("cannot map the file".into())),
                }
                // A file truncated under the scan read zeros past its new end:
                // the verdict is void, and the file is reported as unreadable.
                if let Err(e) = src.check() {
                    s.report.errors.push(err(e.to_string()));
                }
            }
            Err(e) => s.report.errors.push(err(e.to_string())),
        },
        Err(e) => s.report.errors.push(err(e.to_string())),
    }
    s.report.finish();
    s.report
}

/// The scanner rule for a zip anomaly; `None` for what ordinary writers do
/// (data descriptors, comments) and for what only verification finds.
fn zip_rule(a: &Anomaly) -> Option<RuleId> {
    Some(match a {
        Anomaly::Encrypted { .. } => RuleId::ZipEncrypted,
        Anomaly::UnexpectedFlags { .. } => RuleId::ZipFlags,
        Anomaly::UnsupportedMethod { .. } => RuleId::ZipUnsupportedMethod,
        Anomaly::PathTraversal { .. } => RuleId::ZipPathTraversal,
        Anomaly::DuplicateName { .. } | Anomaly::CaseTwin { .. } => RuleId::ZipDuplicateName,
        Anomaly::MissingLocalHeader { .. } | Anomaly::LocalMismatch { .. } => {
            RuleId::ZipHeaderMismatch
        }
        Anomaly::DescriptorMismatch { .. } => RuleId::ZipDescriptorMismatch,
        Anomaly::Overlap { .. } => RuleId::ZipOverlap,
        Anomaly::Malformed { .. } => RuleId::ZipMalformed,
        Anomaly::ExtraBytes { .. } => RuleId::ZipPrefixData,
        _ => return None,
    })
}
