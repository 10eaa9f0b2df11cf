//! The driver: identifies each file and member by content and dispatches.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use safeweights::{Header, HeaderError, ParseOptions};
use safeweights_archive::zip::{crc32, Anomaly, Entry, Method, ZipArchive};
use safeweights_archive::{gzip, tar, GzipError, InspectError, SliceSource, ZipError};

use crate::compressed::{self, DecompressError};
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
        // A zip already found (and scanned) inside a tensor or in trailing
        // bytes is not reported again as the file's own polyglot.
        let mut zip_scanned = false;
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
            Format::Compressed if compressed::sniff(data).is_some() => {
                self.compressed(data, path, depth);
                fmt
            }
            Format::SevenZip | Format::Compressed => {
                let kind = if fmt == Format::SevenZip {
                    "7z archive"
                } else {
                    "zstd or unrecognised compressed stream"
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
                zip_scanned = self.safetensors(data, path, depth);
                fmt
            }
            Format::Pickle => {
                let ctx = self.pickle_context(false);
                self.pickle(data, path, ctx, true).0
            }
            Format::Onnx => {
                self.onnx(data, path);
                fmt
            }
            Format::Gguf => {
                self.gguf(data, path);
                fmt
            }
            Format::SavedModel => {
                self.saved_model(data, path);
                fmt
            }
            _ if compressed::sniff(data).is_some() => {
                self.compressed(data, path, depth);
                Format::Compressed
            }
            _ => {
                if ZipArchive::inspect(SliceSource::new(data)).is_ok() {
                    // Zip readers that find the directory from the end accept this.
                    self.zip(data, path, depth)
                } else {
                    self.unknown(data, path, depth);
                    Format::Unknown
                }
            }
        };
        self.report.files[idx].format = fmt;
        self.claims(fmt, path);
        if !zip_scanned {
            self.hidden_zip(fmt, data, path, depth);
        }
        self.policy(fmt, path, in_weights);
    }

    /// How pickles are judged here: TorchScript's own classes, the user's
    /// allowed globals.
    fn pickle_context(&self, torchscript: bool) -> pickle::Context {
        pickle::Context {
            torchscript,
            allowed: self.opts.allowed_globals.clone(),
        }
    }

    /// The name of the blob at `path`: the member name, or the file's.
    fn name(&self, path: &[String]) -> String {
        path.last().unwrap_or(&self.file).clone()
    }

    /// A file named like a model format whose content is not that format.
    fn claims(&mut self, fmt: Format, path: &[String]) {
        let name = self.name(path);
        let Some((what, ok)) = formats::claimed(&name) else {
            return;
        };
        if ok.contains(&fmt) {
            return;
        }
        self.add(
            path,
            Severity::Medium,
            RuleId::FormatMismatch,
            format!("claims to be {what} but is not: the content is {fmt}"),
            "tools pick a loader by the name, others by the content: what is checked as one format may be loaded as another; the content was scanned as what it is",
            Some(0),
            None,
        );
    }

    /// A zip archive at the end of a file of another format: zip readers
    /// find its directory from the end and open it (a polyglot).
    fn hidden_zip(&mut self, fmt: Format, data: &[u8], path: &mut Vec<String>, depth: usize) {
        if matches!(
            fmt,
            Format::Zip
                | Format::PytorchZip
                | Format::Torchscript
                | Format::Keras
                | Format::Npz
                | Format::Tar
                | Format::Gzip
                | Format::SevenZip
                | Format::Compressed
                | Format::Unknown
        ) {
            return;
        }
        let tail = &data[data.len().saturating_sub(22 + 65535)..];
        if memchr::memmem::rfind(tail, b"PK\x05\x06").is_none() {
            return;
        }
        let Ok(zip) = ZipArchive::inspect(SliceSource::new(data)) else {
            return;
        };
        if zip.entries().is_empty() {
            return;
        }
        let first = zip
            .entries()
            .iter()
            .map(|e| e.header_offset)
            .min()
            .unwrap_or(0);
        self.add(
            path,
            Severity::High,
            RuleId::PolyglotZip,
            format!(
                "this {fmt} file is also a zip archive of {} member(s) (zip readers find its directory at the end)",
                zip.entries().len()
            ),
            "zip-based loaders (zipfile, Keras, NumPy through zipfile) open the same bytes as an archive; its members are scanned",
            Some(first),
            None,
        );
        self.nested_zip(data, path, format!("<zip@{first}>"), depth);
    }

    /// Scans `data` as a zip member named `name` (without sniffing it again).
    fn nested_zip(&mut self, data: &[u8], path: &mut Vec<String>, name: String, depth: usize) {
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
            let idx = self.report.files.len();
            self.report.files.push(ScannedFile {
                file: self.file.clone(),
                member: join(path),
                format: Format::Zip,
                size: data.len() as u64,
            });
            let f = self.zip(data, path, depth + 1);
            self.report.files[idx].format = f;
        }
        path.pop();
    }

    /// Content no format claims: compressed streams, chat templates.
    fn unknown(&mut self, data: &[u8], path: &mut Vec<String>, depth: usize) {
        if formats::looks_like_zlib(data) {
            let mut out = Vec::new();
            let limit = self.remaining();
            let r = std::io::Read::read_to_end(
                &mut std::io::Read::take(
                    flate2::read::ZlibDecoder::new(data),
                    limit.saturating_add(1),
                ),
                &mut out,
            );
            // A broken stream still yields what a streaming reader (joblib's
            // zlib file) hands the unpickler before the error: scanned when
            // it is something.
            if !out.is_empty() && (r.is_ok() || sniff(&out) != Format::Unknown) {
                if out.len() as u64 > limit {
                    self.limit_expanded(path);
                } else {
                    self.expanded += out.len() as u64;
                    self.recurse(&out, path, "<zlib>".into(), depth, false);
                }
                return;
            }
        }
        if formats::looks_like_lzma_alone(data) {
            let limit = self.remaining();
            let mut out = Capped {
                buf: Vec::new(),
                limit,
            };
            let mut input = data;
            let r = lzma_rs::lzma_decompress_with_options(
                &mut input,
                &mut out,
                &lzma_rs::decompress::Options {
                    memlimit: Some(usize::try_from(limit).unwrap_or(usize::MAX)),
                    ..Default::default()
                },
            );
            let too_big = out.buf.len() as u64 >= limit;
            if too_big {
                self.limit_expanded(path);
                return;
            }
            if !out.buf.is_empty() && (r.is_ok() || sniff(&out.buf) != Format::Unknown) {
                self.expanded += out.buf.len() as u64;
                self.recurse(&out.buf, path, "<lzma>".into(), depth, false);
                return;
            }
        }
        let name = self.name(path);
        if name.to_ascii_lowercase().ends_with(".jinja") {
            let text = String::from_utf8_lossy(data).into_owned();
            self.template(&text, "template file", Some(0), path);
            return;
        }
        self.json_templates(data, path);
        // Keras configs outside a `.keras` zip: a loose `config.json`, the
        // `keras_metadata.pb` of a SavedModel folder. Other unknown files
        // (raw weights, tokenizer models) are not searched.
        let lower = name.to_ascii_lowercase();
        let json = data.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'{');
        if (json || lower.ends_with(".pb")) && self.has_keras_config(data) {
            self.keras_text(data, path, "Keras config");
        }
    }

    /// `chat_template` of a JSON config (`tokenizer_config.json`,
    /// `chat_template.json`, `processor_config.json`): one template, or a
    /// list of named ones.
    fn json_templates(&mut self, data: &[u8], path: &[String]) {
        let first = data.iter().find(|c| !c.is_ascii_whitespace());
        if first != Some(&b'{') || memchr::memmem::find(data, b"\"chat_template\"").is_none() {
            return;
        }
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
            return;
        };
        match v.get("chat_template") {
            Some(serde_json::Value::String(t)) => self.template(t, "chat_template", None, path),
            Some(serde_json::Value::Array(list)) => {
                for item in list {
                    if let Some(t) = item.get("template").and_then(|t| t.as_str()) {
                        let n = item.get("name").and_then(|n| n.as_str()).unwrap_or("?");
                        self.template(t, &format!("chat_template {n:?}"), None, path);
                    }
                }
            }
            _ => {}
        }
    }

    /// Whether `data` holds a Keras config object (searched within the limit).
    fn has_keras_config(&self, data: &[u8]) -> bool {
        let max = usize::try_from(self.opts.limits.max_search_bytes).unwrap_or(usize::MAX);
        memchr::memmem::find(&data[..data.len().min(max)], b"{\"class_name\"").is_some()
    }

    /// Judges one Jinja template; `base` is the offset of its text in the
    /// blob, `None` where the text is decoded (a JSON string) and offsets
    /// into it are not offsets into the file.
    fn template(&mut self, text: &str, what: &str, base: Option<u64>, path: &[String]) {
        let hits = crate::template::judge(text);
        let Some(worst) = hits
            .iter()
            .max_by_key(|h| (h.severity, std::cmp::Reverse(h.offset)))
        else {
            return;
        };
        let more = if hits.len() > 1 {
            format!(" (and {} more tag(s))", hits.len() - 1)
        } else {
            String::new()
        };
        let how = if worst.severity == Severity::Critical {
            "reaches Python internals and calls them"
        } else {
            "reaches Python internals"
        };
        self.add(
            path,
            worst.severity,
            RuleId::TemplatePythonInternals,
            format!("{what} {how}: {}: `{}`{more}", worst.what, worst.snippet),
            "chat templates are rendered when the model is used; sandbox escapes through Python internals run arbitrary code",
            base.map(|b| b + worst.offset as u64),
            None,
        );
    }

    fn gguf(&mut self, data: &[u8], path: &[String]) {
        let meta = crate::gguf::metadata(data);
        for s in &meta.strings {
            if s.key.contains("chat_template") || s.value.contains("{%") || s.value.contains("{{") {
                // Offsets of template text are byte offsets into the value.
                self.template(
                    &s.value,
                    &format!("GGUF metadata {}", s.key),
                    Some(s.offset),
                    path,
                );
            }
        }
        if let Some((at, why)) = meta.error {
            self.add(
                path,
                Severity::Medium,
                RuleId::GgufMalformed,
                format!("GGUF metadata cannot be fully read at offset {at}: {why}"),
                "metadata that cannot be read may hide a chat template; loaders may read it differently",
                Some(at),
                None,
            );
        }
    }

    fn saved_model(&mut self, data: &[u8], path: &[String]) {
        // Keras SavedModels carry their layer configs as JSON in the object graph.
        if self.has_keras_config(data) {
            self.keras_text(data, path, "Keras config in the SavedModel");
        }
        let hits = crate::savedmodel::judge(data);
        // One finding per op, naming its first node and how many use it.
        let mut seen: Vec<(String, usize)> = Vec::new();
        for h in &hits {
            match seen.iter_mut().find(|(op, _)| *op == h.op) {
                Some((_, n)) => *n += 1,
                None => seen.push((h.op.clone(), 1)),
            }
        }
        for (op, n) in seen {
            let Some(h) = hits
                .iter()
                .filter(|h| h.op == op)
                .max_by_key(|h| h.severity)
            else {
                continue;
            };
            let detail = if h.detail.is_empty() {
                String::new()
            } else {
                format!(" with {}", h.detail)
            };
            self.add(
                path,
                h.severity,
                RuleId::SavedModelOp,
                format!("TensorFlow graph uses {op} (node {:?}{detail}; {n} node(s))", h.node),
                "running or loading the graph executes this op: it reads or writes files, or runs Python",
                Some(h.offset),
                None,
            );
        }
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
            crate::fix::convert_command(&self.file)
        } else {
            let m = path.last().map(String::as_str).unwrap_or("member");
            format!(
                "extract {m} from the archive, then: {}",
                crate::fix::convert_command(m)
            )
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
    ) -> (Format, Vec<crate::torch_checks::StorageDecl>) {
        let legacy = pickle::is_torch_legacy(data);
        let walk = if legacy {
            Walk::Pickles(5)
        } else {
            Walk::ToEnd
        };
        let mut res = pickle::scan(data, walk, &ctx);
        let fmt = if legacy {
            Format::PytorchLegacy
        } else if res.joblib {
            Format::Joblib
        } else {
            Format::Pickle
        };
        let clean = res.findings.is_empty();
        self.add_raw(path, std::mem::take(&mut res.findings), 0);
        if clean && standalone {
            let fix = path
                .is_empty()
                .then(|| crate::fix::convert_command(&self.file));
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
        (fmt, res.storages)
    }

    /// A whole-file zlib/bzip2/xz/lzma stream or joblib `ZF` file.
    fn compressed(&mut self, data: &[u8], path: &mut Vec<String>, depth: usize) {
        let Some(kind) = compressed::sniff(data) else {
            return;
        };
        match compressed::decompress(kind, data, self.remaining()) {
            Ok(body) => {
                self.expanded += body.len() as u64;
                self.recurse(&body, path, kind.member_name().into(), depth, false);
            }
            Err(DecompressError::TooBig) => self.limit_expanded(path),
            Err(DecompressError::Corrupt(m, partial)) => {
                self.add(
                    path,
                    Severity::Medium,
                    RuleId::CompressedMalformed,
                    format!("{} cannot be decompressed: {m}", kind.name()),
                    "content that cannot be inspected may hide anything",
                    Some(0),
                    None,
                );
                // A streaming reader (joblib's) hands the unpickler what
                // decodes before the break: that is scanned too.
                if !partial.is_empty() {
                    self.expanded += partial.len() as u64;
                    self.recurse(&partial, path, kind.member_name().into(), depth, false);
                }
            }
        }
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
        let res = pickle::scan(body, Walk::ToEnd, &self.pickle_context(false));
        self.add_raw(path, res.findings, npy.data_offset as u64);
    }

    fn keras_text(&mut self, data: &[u8], path: &[String], what: &str) {
        let max = usize::try_from(self.opts.limits.max_search_bytes).unwrap_or(usize::MAX);
        let window = &data[..data.len().min(max)];
        let configs = match serde_json::from_slice::<serde_json::Value>(window) {
            Ok(v) => vec![v],
            Err(_) => crate::keras::embedded_configs(window),
        };
        let mut seen = HashSet::new();
        for c in &configs {
            for h in crate::keras::judge(c) {
                if seen.insert(h.what.clone()) {
                    self.add(
                        path,
                        h.severity,
                        h.rule,
                        format!("{what}: {}", h.what),
                        h.why,
                        None,
                        None,
                    );
                }
            }
        }
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

    /// Judges a safetensors file; true when what follows the header was
    /// already searched for a zip (a tensor holds one, or trailing bytes were
    /// scanned).
    fn safetensors(&mut self, data: &[u8], path: &mut Vec<String>, depth: usize) -> bool {
        let mut scanned = false;
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
        if pickle::looks_like_pickle(data) {
            self.pickle_prefix(data, path, err.is_none());
        }
        match err {
            None | Some(HeaderError::DuplicateKey { .. }) => {
                if let Ok(h) = Header::parse_file_bytes(data, &ParseOptions::lenient()) {
                    scanned = self.tensors(&h, data, path, depth);
                }
            }
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
                    scanned = true;
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
        scanned
    }

    /// The 8-byte length prefix of a safetensors file also reads as a pickle:
    /// a pickle loader handed the file reads that, so it is judged too.
    fn pickle_prefix(&mut self, data: &[u8], path: &mut Vec<String>, valid: bool) {
        let res = pickle::scan(data, Walk::Pickles(1), &pickle::Context::default());
        let raws: Vec<RawFinding> = res
            .findings
            .into_iter()
            .filter(|f| f.rule != RuleId::PickleMalformed || !valid)
            .collect();
        // A prefix that breaks before its STOP (`\x80\x02` then zeros, for a
        // 640-byte header) is no pickle a loader reads.
        if res.pickles == 0 && raws.is_empty() {
            return;
        }
        path.push("<as-pickle>".into());
        self.report.files.push(ScannedFile {
            file: self.file.clone(),
            member: join(path),
            format: if res.pickles > 0 {
                Format::Pickle
            } else {
                Format::Unknown
            },
            size: data.len() as u64,
        });
        let worst = raws.iter().map(|f| f.severity).max();
        self.add_raw(path, raws, 0);
        if worst.is_none_or(|w| w < Severity::Low) {
            self.add(
                path,
                Severity::Low,
                RuleId::FormatAmbiguous,
                format!(
                    "the safetensors length prefix also reads as a complete pickle ({} bytes)",
                    res.consumed
                ),
                "torch.load and pickle.load read the same file as a pickle; what they read was judged as one",
                Some(0),
                None,
            );
        }
        path.pop();
    }

    /// Tensor-level checks of a valid safetensors file: names that look like
    /// paths, and zip archives stored in tensor bytes.
    ///
    /// Tensor payloads are read only where a stored archive would show: the
    /// first and last bytes of every tensor (a zip starts with a local header
    /// and ends with its end record), and the whole of 1-D byte tensors
    /// (`U8`, `I8`, `BOOL`, where files get stored) within `max_search_bytes`.
    fn tensors(&mut self, h: &Header, data: &[u8], path: &mut Vec<String>, depth: usize) -> bool {
        let mut any = false;
        let paths: Vec<&str> = h
            .tensors()
            .iter()
            .map(|t| t.name.as_str())
            .filter(|n| crate::paths::path_like_name(n))
            .collect();
        if let Some(first) = paths.first() {
            self.add(
                path,
                Severity::Low,
                RuleId::SafetensorsPathName,
                format!(
                    "{} tensor name(s) look like paths, e.g. {first:?}",
                    paths.len()
                ),
                "tools that write one file per tensor (npz export, dumps) would write outside their folder",
                Some(8),
                None,
            );
        }
        let Ok(start) = usize::try_from(h.data_start()) else {
            return false;
        };
        let mut budget = self.opts.limits.max_search_bytes;
        for t in h.tensors() {
            let (b, e) = t.data_offsets;
            let (Some(b), Some(e)) = (start.checked_add(b), start.checked_add(e)) else {
                continue;
            };
            let Some(bytes) = data.get(b..e) else {
                continue;
            };
            // Files stored as tensors are 1-D byte arrays (packed quantized
            // weights, also U8, are 2-D and are not searched).
            let byte_typed = t.shape.len() == 1
                && matches!(
                    t.dtype,
                    safeweights::Dtype::U8 | safeweights::Dtype::I8 | safeweights::Dtype::BOOL
                );
            let mut found = Vec::new();
            if bytes.starts_with(b"PK\x03\x04")
                || bytes.len() >= 22 && bytes[bytes.len() - 22..].starts_with(b"PK\x05\x06")
            {
                // A whole archive in the tensor; one that starts in another
                // tensor is the file's polyglot, found from the file's end.
                found = safeweights_archive::zip::find_embedded(bytes);
            } else if byte_typed && (bytes.len() as u64) <= budget {
                budget -= bytes.len() as u64;
                if memchr::memmem::find(bytes, b"PK\x05\x06").is_some() {
                    found = safeweights_archive::zip::find_embedded(bytes);
                }
            }
            any |= !found.is_empty();
            for r in found {
                let at = (b + r.start) as u64;
                self.add(
                    path,
                    Severity::High,
                    RuleId::PolyglotZip,
                    format!(
                        "tensor {:?} holds a zip archive ({} bytes at file offset {at})",
                        t.name,
                        r.len()
                    ),
                    "a tensor is data to safetensors, but code that hands its bytes to zipfile or torch.load opens an archive; its members are scanned",
                    Some(at),
                    None,
                );
                if let Some(z) = bytes.get(r.clone()) {
                    self.nested_zip(z, path, format!("<tensor {}@{at}>", t.name), depth);
                }
            }
        }
        any
    }

    fn onnx(&mut self, data: &[u8], path: &[String]) {
        for (loc, off) in formats::onnx_external_locations(data) {
            let mut escapes = crate::paths::path_escapes(&loc);
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
            if crate::paths::path_escapes(&e.name) {
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
            if (e.kind == b'1' || e.kind == b'2')
                && crate::paths::path_escapes_from(&e.name, &e.link)
            {
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
            let head = &content[..content.len().min(SNIFF)];
            if sniff(head) != Format::Unknown
                || content.len() <= SNIFF
                || formats::worth_reading(&e.name, head)
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
                        let ctx = self.pickle_context(torchscript);
                        let before = self.report.findings.len();
                        let (f, storages) = self.pickle(&body, path, ctx, false);
                        self.report.files[idx].format = f;
                        if !torchscript && e.name == format!("{prefix}data.pkl") {
                            let records: std::collections::HashMap<&str, u64> = zip
                                .entries()
                                .iter()
                                .filter_map(|r| Some((r.name.strip_prefix(&data_dir)?, r.size)))
                                .collect();
                            let raws = pickle::storage_record_findings(&storages, |key| {
                                records.get(key).copied()
                            });
                            self.add_raw(path, raws, 0);
                        }
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
            if f == Format::Unknown
                && !(head.len() < SNIFF && (e.size as usize) <= SNIFF)
                && !formats::worth_reading(&e.name, &head)
            {
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
                .then(|| crate::fix::convert_command(&self.file));
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

/// A writer that stops (with an error) once it holds `limit` bytes.
struct Capped {
    buf: Vec<u8>,
    limit: u64,
}

impl std::io::Write for Capped {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let room =
            usize::try_from(self.limit.saturating_sub(self.buf.len() as u64)).unwrap_or(usize::MAX);
        if room == 0 {
            return Err(std::io::Error::other("expanded-size limit"));
        }
        let n = b.len().min(room);
        self.buf.extend_from_slice(&b[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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
    match fs_err::metadata(path) {
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

/// The scanner rule for a zip anomaly (reported at medium); `None` for what
/// ordinary writers do (data descriptors, comments) and for what only
/// verification finds. The converter refuses the same anomalies, through
/// this one function.
pub fn zip_rule(a: &Anomaly) -> Option<RuleId> {
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
