//! Dispatch, writers and read-back verification.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use safeweights::sharded::{plan_shards, shard_file_name, ShardIndex};
use safeweights::{AtomicFile, Metadata, StreamingWriter, TensorSpec};
use safeweights_archive::{ZipArchive, ZipWriter};

use crate::error::{io_err, ConvertError, Result};
use crate::npy;
use crate::npy_source::NpySource;
use crate::options::{ConvertOptions, ConvertSummary, Phase};
use crate::safetensors_source::SafetensorsSource;
use crate::source::{Entry, TensorSource};
use crate::torch_source::TorchSource;
use crate::torchw::{self, PickleTensor};

/// The `__metadata__` key under which non-tensor leaves are kept (as a JSON
/// object text, dotted name → value) when [`ConvertOptions::metadata_leaves`] is set.
pub const LEAVES_METADATA_KEY: &str = "non_tensor_leaves";

/// What a file holds, judged by its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Input {
    /// A PyTorch checkpoint (zip or legacy) or something that claims to be.
    Torch,
    Npy,
    Npz,
    Safetensors,
}

/// The format a destination path asks for, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Safetensors,
    Torch,
    Npz,
}

pub(crate) fn target_of(dst: &Path) -> Option<Target> {
    let ext = dst.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "safetensors" => Target::Safetensors,
        "bin" | "pt" | "pth" | "ckpt" => Target::Torch,
        "npz" => Target::Npz,
        _ => return None,
    })
}

pub(crate) fn detect(path: &Path) -> Result<Input> {
    let mut f = fs_err::File::open(path).map_err(io_err(path))?;
    let len = f.metadata().map_err(io_err(path))?.len();
    let mut head = [0u8; 16];
    let n = f.read(&mut head).map_err(io_err(path))?;
    let head = &head[..n];
    if head.starts_with(npy::MAGIC) {
        return Ok(Input::Npy);
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        let zip = safeweights::FileSource::open(path)
            .ok()
            .map(ZipArchive::new);
        if let Some(Ok(z)) = zip {
            let names: Vec<&str> = z.entries().iter().map(|e| e.name.as_str()).collect();
            let torchy = names.iter().any(|n| {
                n.ends_with("/data.pkl") || n.contains("/code/") || n.ends_with("/constants.pkl")
            });
            if !torchy && !names.is_empty() && names.iter().all(|n| n.ends_with(".npy")) {
                return Ok(Input::Npz);
            }
        }
        return Ok(Input::Torch);
    }
    if head.len() >= 9 {
        let hlen = u64::from_le_bytes(head[..8].try_into().unwrap_or([0; 8]));
        if head[8] == b'{' && hlen.checked_add(8).is_some_and(|e| e <= len) {
            return Ok(Input::Safetensors);
        }
    }
    // legacy torch, tar, or not a checkpoint: the torch reader says which
    Ok(Input::Torch)
}

/// Counts bytes through to `inner` and reports progress every 64 MiB.
struct Counting<'a, W: Write> {
    inner: W,
    done: &'a mut u64,
    total: u64,
    opts: &'a ConvertOptions,
    phase: Phase,
    item: &'a str,
    since: u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        *self.done += n as u64;
        self.since += n as u64;
        if self.since >= 64 << 20 {
            self.since = 0;
            self.opts
                .report(self.phase, self.item, *self.done, self.total);
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Compares what is written with tensor `i` of `out`.
struct Compare<'a> {
    out: &'a dyn TensorSource,
    i: usize,
    pos: u64,
    len: u64,
    buf: Vec<u8>,
    mismatch: Option<String>,
    failed: Option<ConvertError>,
}

impl Write for Compare<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len() as u64;
        if self.pos + n > self.len {
            self.mismatch = Some(format!(
                "the source has more than the {} bytes written",
                self.len
            ));
            return Err(io::Error::other("verification mismatch"));
        }
        self.buf.resize(data.len(), 0);
        if let Err(e) = self.out.read_at(self.i, self.pos, &mut self.buf) {
            self.failed = Some(e);
            return Err(io::Error::other("verification read failed"));
        }
        if self.buf != data {
            let at = self
                .buf
                .iter()
                .zip(data)
                .position(|(a, b)| a != b)
                .unwrap_or(0) as u64;
            self.mismatch = Some(format!("bytes differ at byte {}", self.pos + at));
            return Err(io::Error::other("verification mismatch"));
        }
        self.pos += n;
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Each tensor of `entries` under its own name (pairs for [`verify`]).
fn same_names(entries: &[Entry]) -> Vec<(String, usize)> {
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.name.clone(), i))
        .collect()
}

/// Verifies the safetensors files among `written` against `src` (every
/// tensor under its own name).
pub(crate) fn verify_safetensors(
    src: &dyn TensorSource,
    written: &[PathBuf],
    opts: &ConvertOptions,
) -> Result<()> {
    let shards: Vec<PathBuf> = written
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .cloned()
        .collect();
    let out = SafetensorsSource::open(&shards)?;
    verify(src, &out, &same_names(src.entries()), opts)
}

/// Checks that `out` holds exactly the tensors `pairs` (output name, source
/// index) with the source's dtype, shape and bytes.
pub(crate) fn verify(
    src: &dyn TensorSource,
    out: &dyn TensorSource,
    pairs: &[(String, usize)],
    opts: &ConvertOptions,
) -> Result<()> {
    let by_name: HashMap<&str, usize> = out
        .entries()
        .iter()
        .enumerate()
        .map(|(i, e)| (e.name.as_str(), i))
        .collect();
    let fail = |file: &Path, tensor: &str, reason: String| ConvertError::Verification {
        file: file.to_path_buf(),
        tensor: tensor.to_owned(),
        reason,
    };
    if let Some(extra) = out
        .entries()
        .iter()
        .find(|e| !pairs.iter().any(|(n, _)| n == &e.name))
    {
        return Err(fail(out.file(0), &extra.name, "not in the source".into()));
    }
    let total: u64 = pairs.iter().map(|&(_, s)| src.entries()[s].bytes).sum();
    let mut done = 0u64;
    for (name, s) in pairs {
        let e = &src.entries()[*s];
        let Some(&o) = by_name.get(name.as_str()) else {
            return Err(fail(
                out.file(0),
                name,
                "missing from the written output".into(),
            ));
        };
        let oe = &out.entries()[o];
        if oe.dtype != e.dtype || oe.shape != e.shape || oe.bytes != e.bytes {
            return Err(fail(
                out.file(o),
                name,
                format!(
                    "written as {} {:?} ({} bytes), source is {} {:?} ({} bytes)",
                    oe.dtype, oe.shape, oe.bytes, e.dtype, e.shape, e.bytes
                ),
            ));
        }
        opts.report(Phase::Verifying, name, done, total);
        let mut cmp = Compare {
            out,
            i: o,
            pos: 0,
            len: oe.bytes,
            buf: Vec::new(),
            mismatch: None,
            failed: None,
        };
        let r = src.copy_to(
            *s,
            &mut Counting {
                inner: &mut cmp,
                done: &mut done,
                total,
                opts,
                phase: Phase::Verifying,
                item: name,
                since: 0,
            },
        );
        if let Some(m) = cmp.mismatch {
            return Err(fail(out.file(o), name, m));
        }
        if let Some(e) = cmp.failed {
            return Err(e);
        }
        r?;
        if cmp.pos != cmp.len {
            return Err(fail(
                out.file(o),
                name,
                format!("source gave {} of {} bytes", cmp.pos, cmp.len),
            ));
        }
    }
    opts.report(Phase::Verifying, "", done, total);
    Ok(())
}

/// Writes groups of tensors of `src` as safetensors files `names` in `dir`,
/// with per-file metadata. Paths written are pushed onto `written` as they complete.
pub(crate) fn write_safetensors(
    src: &dyn TensorSource,
    dir: &Path,
    names: &[String],
    groups: &[Vec<usize>],
    metadata: &[Metadata],
    opts: &ConvertOptions,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    let total: u64 = groups
        .iter()
        .flatten()
        .map(|&i| src.entries()[i].bytes)
        .sum();
    let mut done = 0u64;
    for ((name, group), meta) in names.iter().zip(groups).zip(metadata) {
        let path = dir.join(name);
        let specs = group
            .iter()
            .map(|&i| {
                let e = &src.entries()[i];
                TensorSpec::new(e.name.clone(), e.dtype, e.shape.clone())
            })
            .collect();
        // Without overwrite the output is created only if its name is still
        // free when it is complete: a concurrent writer's file is kept.
        let replace = safeweights::WriteOptions::new().replace(opts.overwrite);
        let mut w = StreamingWriter::create_with(&path, specs, Some(meta), &replace)?;
        for &i in group {
            let e = &src.entries()[i];
            opts.report(Phase::Writing, &e.name, done, total);
            let n = src.copy_to(
                i,
                &mut Counting {
                    inner: w.tensor_writer(&e.name),
                    done: &mut done,
                    total,
                    opts,
                    phase: Phase::Writing,
                    item: &e.name,
                    since: 0,
                },
            )?;
            if n != e.bytes {
                return Err(ConvertError::Verification {
                    file: src.file(i).to_path_buf(),
                    tensor: e.name.clone(),
                    reason: format!("source gave {n} bytes, expected {}", e.bytes),
                });
            }
        }
        w.finish()?;
        written.push(path);
    }
    opts.report(Phase::Writing, "", done, total);
    Ok(())
}

pub(crate) fn write_index(
    path: &Path,
    weight_map: BTreeMap<String, String>,
    total_size: u64,
) -> Result<()> {
    let mut index = ShardIndex {
        weight_map,
        ..Default::default()
    };
    index
        .metadata
        .insert("total_size".into(), total_size.into());
    let atomic = AtomicFile::create(path)?;
    (&mut atomic.file())
        .write_all(index.to_json().as_bytes())
        .map_err(io_err(path))?;
    atomic.commit()?;
    Ok(())
}

/// Writes a torch zip checkpoint: every entry of `src`, plus `aliases`
/// (name, entry index) sharing the storage of that entry.
pub(crate) fn write_torch(
    src: &dyn TensorSource,
    dst: &Path,
    aliases: &[(String, usize)],
    opts: &ConvertOptions,
) -> Result<()> {
    let entries = src.entries();
    let mut shapes = Vec::with_capacity(entries.len());
    for e in entries {
        if torchw::torch_type(e.dtype).is_none() {
            return Err(ConvertError::UnsupportedTensor {
                file: src.file(0).to_path_buf(),
                tensor: e.name.clone(),
                reason: format!("torch has no dtype for {}", e.dtype),
            });
        }
        let mut shape: Vec<u64> = e.shape.iter().map(|&d| d as u64).collect();
        if e.dtype == safeweights::Dtype::F4 {
            match shape.last_mut() {
                Some(l) if *l % 2 == 0 => *l /= 2,
                _ => {
                    return Err(ConvertError::UnsupportedTensor {
                        file: src.file(0).to_path_buf(),
                        tensor: e.name.clone(),
                        reason: "F4 tensor with an odd last dimension cannot be packed as torch.float4_e2m1fn_x2".into(),
                    })
                }
            }
        }
        shapes.push(shape);
    }
    let keys: Vec<String> = (0..entries.len()).map(|i| i.to_string()).collect();
    let mut records: Vec<PickleTensor<'_>> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| PickleTensor {
            name: &e.name,
            key: &keys[i],
            dtype: e.dtype,
            shape: &shapes[i],
            storage_bytes: e.bytes,
        })
        .collect();
    for (name, i) in aliases {
        let e = &entries[*i];
        records.push(PickleTensor {
            name,
            key: &keys[*i],
            dtype: e.dtype,
            shape: &shapes[*i],
            storage_bytes: e.bytes,
        });
    }
    let pkl = torchw::data_pkl(&records);
    let head: [(&str, &[u8]); 4] = [
        ("archive/data.pkl", &pkl),
        ("archive/.format_version", b"1"),
        ("archive/.storage_alignment", b"64"),
        ("archive/byteorder", b"little"),
    ];
    write_zip(
        src,
        dst,
        opts,
        &head,
        |i| (format!("archive/data/{}", keys[i]), &[][..]),
        &[("archive/version", b"3\n")],
    )
}

/// Writes an `.npz` (stored members `<name>.npy`).
pub(crate) fn write_npz(src: &dyn TensorSource, dst: &Path, opts: &ConvertOptions) -> Result<()> {
    let entries = src.entries();
    let mut headers = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let descr = npy::descr_of(e.dtype).ok_or_else(|| ConvertError::UnsupportedTensor {
            file: src.file(i).to_path_buf(),
            tensor: e.name.clone(),
            reason: format!("NumPy has no dtype for {}", e.dtype),
        })?;
        headers.push(npy::write_header(descr, &e.shape));
        let member = format!("{}.npy", e.name);
        if e.name.is_empty()
            || e.name.contains('\0')
            || safeweights_archive::zip::escapes_extraction(&member)
        {
            return Err(ConvertError::UnsafeTensorName {
                file: src.file(i).to_path_buf(),
                tensor: e.name.clone(),
                reason: format!(
                    "the .npz member {member:?} would be absolute, on a drive, or climb out with '..' when extracted"
                ),
            });
        }
    }
    write_zip(
        src,
        dst,
        opts,
        &[],
        |i| (format!("{}.npy", entries[i].name), &headers[i][..]),
        &[],
    )
}

/// Writes a zip of stored members to `dst` atomically: the `head` members,
/// then one per tensor of `src` (`member(i)` gives its name and the bytes
/// written before the tensor's), then the `tail` members; reports progress.
fn write_zip<'h>(
    src: &dyn TensorSource,
    dst: &Path,
    opts: &ConvertOptions,
    head: &[(&str, &[u8])],
    member: impl Fn(usize) -> (String, &'h [u8]),
    tail: &[(&str, &[u8])],
) -> Result<()> {
    let entries = src.entries();
    let atomic = if opts.overwrite {
        AtomicFile::create(dst)?
    } else {
        AtomicFile::create_new(dst)?
    };
    let io = |e| ConvertError::Io {
        file: dst.to_path_buf(),
        source: e,
    };
    {
        let mut z = ZipWriter::new(BufWriter::with_capacity(4 << 20, atomic.file()));
        for (name, data) in head {
            z.entry(name, data).map_err(io)?;
        }
        let total: u64 = entries.iter().map(|e| e.bytes).sum();
        let mut done = 0u64;
        for (i, e) in entries.iter().enumerate() {
            opts.report(Phase::Writing, &e.name, done, total);
            let (name, prefix) = member(i);
            z.start_entry(&name, prefix.len() as u64 + e.bytes)
                .map_err(io)?;
            z.write_all(prefix).map_err(io)?;
            src.copy_to(
                i,
                &mut Counting {
                    inner: &mut z,
                    done: &mut done,
                    total,
                    opts,
                    phase: Phase::Writing,
                    item: &e.name,
                    since: 0,
                },
            )?;
            z.finish_entry().map_err(io)?;
        }
        opts.report(Phase::Writing, "", done, total);
        for (name, data) in tail {
            z.entry(name, data).map_err(io)?;
        }
        let mut w = z.finish().map_err(io)?;
        w.flush().map_err(io)?;
    }
    atomic.commit()?;
    Ok(())
}

fn remove_all(paths: &[PathBuf]) {
    for p in paths {
        let _ = fs_err::remove_file(p);
    }
}

/// An opened source with what the summary needs.
pub(crate) struct Opened {
    pub source: Box<dyn TensorSource>,
    pub format: &'static str,
    pub metadata: Metadata,
    /// Dropped alias name → index of the kept entry.
    pub aliases: Vec<(String, usize)>,
}

/// Refuses a zip-based source whose zip anomalies the scanner reports at
/// medium or above, unless [`ConvertOptions::allow_zip_anomalies`]: scan and
/// convert never disagree on the same bytes.
pub(crate) fn check_zip_anomalies(path: &Path, opts: &ConvertOptions) -> Result<()> {
    if opts.allow_zip_anomalies {
        return Ok(());
    }
    // The archive's directory only (no member is inflated), judged by the
    // scanner's own rule for each anomaly: scan and convert agree.
    let source = safeweights::FileSource::open(path).map_err(io_err(path))?;
    let Ok(zip) = safeweights_archive::ZipArchive::inspect(source) else {
        return Ok(()); // not a readable zip: the reader says why
    };
    for a in zip.anomalies() {
        if let Some(rule) = safeweights_scan::zip_rule(a) {
            return Err(ConvertError::ZipAnomaly {
                file: path.to_path_buf(),
                member: a.member().map(str::to_owned),
                rule: rule.as_str().to_owned(),
                what: a.to_string(),
            });
        }
    }
    Ok(())
}

pub(crate) fn open_source(
    path: &Path,
    opts: &ConvertOptions,
    summary: &mut ConvertSummary,
) -> Result<Opened> {
    let input = detect(path)?;
    if matches!(input, Input::Torch | Input::Npz) {
        check_zip_anomalies(path, opts)?;
    }
    let mut metadata = Metadata::new();
    let mut aliases = Vec::new();
    let (source, format): (Box<dyn TensorSource>, &'static str) = match input {
        Input::Torch => {
            let t = TorchSource::open(path, opts.keep_shared)?;
            metadata.insert("format".into(), "pt".into());
            let index: HashMap<&str, usize> = t
                .entries()
                .iter()
                .enumerate()
                .map(|(i, e)| (e.name.as_str(), i))
                .collect();
            for a in &t.aliases {
                metadata
                    .entry(a.name.clone())
                    .or_insert_with(|| a.kept.clone());
                if let Some(&k) = index.get(a.kept.as_str()) {
                    aliases.push((a.name.clone(), k));
                }
            }
            if opts.metadata_leaves && !t.leaves.is_empty() {
                let obj: serde_json::Map<String, serde_json::Value> = t
                    .leaves
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect();
                metadata.insert(
                    LEAVES_METADATA_KEY.into(),
                    serde_json::Value::Object(obj).to_string(),
                );
                summary.leaves_in_metadata = true;
            }
            summary.dropped_aliases = t.aliases.clone();
            summary.shared_copies = t.shared_copies.clone();
            summary.non_tensor_leaves = t.leaves.clone();
            let f = t.format_name();
            (Box::new(t), f)
        }
        Input::Npy => {
            metadata.insert("format".into(), "np".into());
            (Box::new(NpySource::open_npy(path)?), "npy")
        }
        Input::Npz => {
            metadata.insert("format".into(), "np".into());
            (Box::new(NpySource::open_npz(path)?), "npz")
        }
        Input::Safetensors => {
            let s = SafetensorsSource::open(&[path.to_path_buf()])?;
            if let Some(m) = s.metadata() {
                metadata = m.clone();
            }
            // restore ties recorded the way `save_model` records them
            let index: HashMap<&str, usize> = s
                .entries()
                .iter()
                .enumerate()
                .map(|(i, e)| (e.name.as_str(), i))
                .collect();
            for (k, v) in &metadata {
                if !index.contains_key(k.as_str()) {
                    if let Some(&i) = index.get(v.as_str()) {
                        aliases.push((k.clone(), i));
                    }
                }
            }
            (Box::new(s), "safetensors")
        }
    };
    Ok(Opened {
        source,
        format,
        metadata,
        aliases,
    })
}

pub(crate) fn check_destination(src: &Path, dst: &Path, opts: &ConvertOptions) -> Result<()> {
    if let (Ok(a), Ok(b)) = (src.canonicalize(), dst.canonicalize()) {
        if a == b {
            return Err(ConvertError::Unsupported {
                file: dst.to_path_buf(),
                reason: "the destination is the source".into(),
            });
        }
    }
    if dst.exists() && !opts.overwrite {
        return Err(ConvertError::DestinationExists {
            path: dst.to_path_buf(),
        });
    }
    Ok(())
}

pub(crate) fn convert_file(
    src: &Path,
    dst: &Path,
    opts: &ConvertOptions,
) -> Result<ConvertSummary> {
    let target = target_of(dst).ok_or_else(|| ConvertError::Unsupported {
        file: dst.to_path_buf(),
        reason: "cannot tell the target format: use a .safetensors, .bin/.pt/.pth/.ckpt or .npz destination".into(),
    })?;
    check_destination(src, dst, opts)?;
    if dst.is_dir() {
        return Err(ConvertError::Unsupported {
            file: dst.to_path_buf(),
            reason: "the destination is a folder".into(),
        });
    }
    let mut summary = ConvertSummary {
        source: src.to_path_buf(),
        destination: dst.to_path_buf(),
        ..Default::default()
    };
    let opened = open_source(src, opts, &mut summary)?;
    summary.source_format = opened.format.into();
    let source = opened.source.as_ref();
    let entries = source.entries();
    summary.tensors = entries.len();
    summary.bytes = entries.iter().map(|e| e.bytes).sum();
    let mut written = Vec::new();
    let result = (|| -> Result<()> {
        match target {
            Target::Safetensors => {
                summary.target_format = "safetensors".into();
                let sizes: Vec<u64> = entries.iter().map(|e| e.bytes).collect();
                let groups = match opts.max_shard_size {
                    Some(max) => plan_shards(&sizes, max),
                    None => vec![(0..entries.len()).collect()],
                };
                let dir = match dst.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                let file_name = dst
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let stem = dst
                    .file_stem()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let count = groups.len();
                let names: Vec<String> = if count == 1 {
                    vec![file_name]
                } else {
                    (0..count)
                        .map(|g| shard_file_name(&stem, g, count))
                        .collect()
                };
                if count > 1 && !opts.overwrite {
                    for n in &names {
                        if dir.join(n).exists() {
                            return Err(ConvertError::DestinationExists { path: dir.join(n) });
                        }
                    }
                }
                let metas = vec![opened.metadata.clone(); count];
                write_safetensors(source, &dir, &names, &groups, &metas, opts, &mut written)?;
                if count > 1 {
                    let mut map = BTreeMap::new();
                    for (n, g) in names.iter().zip(&groups) {
                        for &i in g {
                            map.insert(entries[i].name.clone(), n.clone());
                        }
                    }
                    let index = dir.join(format!("{stem}.safetensors.index.json"));
                    write_index(&index, map, summary.bytes)?;
                    written.push(index);
                }
                verify_safetensors(source, &written, opts)
            }
            Target::Torch => {
                summary.target_format = "torch-zip".into();
                write_torch(source, dst, &opened.aliases, opts)?;
                written.push(dst.to_path_buf());
                let out = TorchSource::open(dst, true)?;
                let mut pairs = same_names(entries);
                pairs.extend(opened.aliases.iter().cloned());
                verify(source, &out, &pairs, opts)
            }
            Target::Npz => {
                summary.target_format = "npz".into();
                write_npz(source, dst, opts)?;
                written.push(dst.to_path_buf());
                let out = NpySource::open_npz(dst)?;
                verify(source, &out, &same_names(entries), opts)
            }
        }
    })();
    if let Err(e) = result {
        remove_all(&written);
        return Err(e);
    }
    summary.files_written = written;
    summary.verified = true;
    Ok(summary)
}
