//! PyTorch checkpoints: the zip format (`torch.save` since 1.6), the
//! legacy pre-1.6 stream format and the legacy pre-0.4 tar format, read
//! without executing anything.
//!
//! [`TorchCheckpoint::open`] detects the format, evaluates the object pickle
//! with the data-only evaluator, flattens it into named tensors and JSON
//! leaves, and checks that every tensor fits inside its storage. Storage
//! bytes are read on demand with positioned reads.

use crate::dtype::TorchDtype;
use crate::error::{Error, PickleError, PickleErrorKind};
use crate::eval::{evaluate_at, Limits};
use crate::value::{Graph, Node, NumpyArray, Tensor, Value};
use safeweights::{FileSource, Source};
use safeweights_archive::zip::{Anomaly, Method, ZipArchive};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Checkpoint container format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// Zip archive (`torch.save` default since PyTorch 1.6).
    Zip,
    /// Legacy stream format (`_use_new_zipfile_serialization=False`, PyTorch < 1.6).
    Legacy,
    /// Legacy tar format (PyTorch < 0.4: `sys_info`, `pickle`, `tensors`, `storages` members).
    LegacyTar,
}

mod legacy_tar;

/// A tensor with its flattened dotted name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedTensor {
    /// Dotted name (`state_dict.layer.0.weight`; list items by index; `""` for a root tensor).
    pub name: String,
    /// The tensor view.
    pub tensor: Tensor,
}

/// A numpy array found in the checkpoint, with its dotted name.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedArray {
    /// Dotted name.
    pub name: String,
    /// The array.
    pub array: NumpyArray,
}

#[derive(Debug, Clone)]
enum StorageLoc {
    Zip(usize),
    Raw { offset: u64 },
}

#[derive(Debug, Clone)]
struct StorageInfo {
    loc: StorageLoc,
    len: u64,
}

/// An opened PyTorch checkpoint. `R` is the byte source (a [`FileSource`]
/// by default: positioned reads on the file).
pub struct TorchCheckpoint<R = FileSource> {
    file: PathBuf,
    format: Format,
    big_endian: bool,
    zip: Option<ZipArchive<R>>,
    raw: Option<R>,
    graph: Graph,
    tensors: Vec<NamedTensor>,
    leaves: Vec<(String, serde_json::Value)>,
    arrays: Vec<NamedArray>,
    storages: HashMap<String, StorageInfo>,
    limits: Limits,
}

/// Sources need not be `Debug`: the checkpoint shows what it read.
impl<R> std::fmt::Debug for TorchCheckpoint<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorchCheckpoint")
            .field("file", &self.file)
            .field("format", &self.format)
            .field("big_endian", &self.big_endian)
            .field("zip", &self.zip)
            .field("graph", &self.graph)
            .field("tensors", &self.tensors)
            .field("leaves", &self.leaves)
            .field("arrays", &self.arrays)
            .field("storages", &self.storages)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

impl TorchCheckpoint<FileSource> {
    /// Open a checkpoint file with default [`Limits`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open_with_limits(path, Limits::default())
    }
    /// Open a checkpoint file with the given limits.
    pub fn open_with_limits(path: impl AsRef<Path>, limits: Limits) -> Result<Self, Error> {
        let path = path.as_ref();
        let f = FileSource::open(path).map_err(|source| Error::Io {
            file: path.to_path_buf(),
            source,
        })?;
        Self::from_source(f, path, limits)
    }
}

impl<R: Source> TorchCheckpoint<R> {
    /// Read a checkpoint from any [`Source`]; `name` is used in errors.
    pub fn from_source(src: R, name: impl AsRef<Path>, limits: Limits) -> Result<Self, Error> {
        let file = name.as_ref().to_path_buf();
        let io = |source| Error::Io {
            file: file.clone(),
            source,
        };
        let len = src.len();
        let mut head = vec![0u8; len.min(512) as usize];
        src.read_exact_at(0, &mut head).map_err(io)?;
        if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            return Self::open_zip(src, file, limits);
        }
        // torch.load tries the tar format first, too
        if head.get(257..262) == Some(b"ustar") || safeweights_archive::tar::is_tar(&head) {
            return Self::open_legacy_tar(src, file, limits);
        }
        if head.starts_with(&[0x80, 0x02, 0x8a, 0x0a]) && head.get(4..14) == Some(&LEGACY_MAGIC) {
            return Self::open_legacy(src, file, limits);
        }
        Err(Error::NotACheckpoint {
            file,
            reason: "neither a zip archive, a legacy torch stream (magic number pickle) nor a tar"
                .into(),
        })
    }

    fn open_zip(src: R, file: PathBuf, limits: Limits) -> Result<Self, Error> {
        let zip = ZipArchive::new(src).map_err(|e| Error::zip(&file, e))?;
        let zerr = |e| Error::zip(&file, e);
        let first = zip.entries().first().ok_or_else(|| Error::NotACheckpoint {
            file: file.clone(),
            reason: "empty zip archive".into(),
        })?;
        let prefix = match first.name.split_once('/') {
            Some((p, _)) => p.to_string(),
            None => {
                return Err(Error::NotACheckpoint {
                    file: file.clone(),
                    reason: format!("first zip entry {:?} has no folder prefix", first.name),
                })
            }
        };
        for e in zip.entries() {
            let rest = e
                .name
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_prefix('/'));
            if let Some(rest) = rest {
                if rest.starts_with("code/") || rest == "constants.pkl" {
                    return Err(Error::TorchScript {
                        file,
                        evidence: e.name.clone(),
                    });
                }
            }
        }
        let pkl_name = format!("{prefix}/data.pkl");
        let pkl_entry = zip.entry(&pkl_name).ok_or_else(|| Error::NotACheckpoint {
            file: file.clone(),
            reason: format!("no {pkl_name} member"),
        })?;
        let pkl = zip.read(pkl_entry, limits.max_pickle_bytes).map_err(zerr)?;
        let big_endian = match zip.entry(&format!("{prefix}/byteorder")) {
            None => false,
            Some(e) => {
                let b = zip.read(e, 64).map_err(zerr)?;
                match b.as_slice() {
                    b"little" => false,
                    b"big" => true,
                    other => {
                        return Err(Error::Invalid {
                            file,
                            reason: format!(
                                "byteorder member is {:?}, expected \"little\" or \"big\"",
                                String::from_utf8_lossy(other)
                            ),
                        })
                    }
                }
            }
        };
        let graph = evaluate_at(&pkl, 0, &limits).map_err(|source| Error::Pickle {
            file: file.clone(),
            member: Some(pkl_name.clone()),
            source,
        })?;
        let mut storages = HashMap::new();
        for (i, e) in zip.entries().iter().enumerate() {
            if let Some(key) = e
                .name
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_prefix("/data/"))
            {
                if !key.is_empty() && !key.contains('/') && !storages.contains_key(key) {
                    storages.insert(
                        key.to_string(),
                        StorageInfo {
                            loc: StorageLoc::Zip(i),
                            len: e.size,
                        },
                    );
                }
            }
        }
        Self::assemble(
            file,
            (Format::Zip, big_endian),
            (Some(zip), None),
            graph,
            storages,
            limits,
        )
    }

    fn open_legacy(src: R, file: PathBuf, limits: Limits) -> Result<Self, Error> {
        let len = src.len();
        let mut window = len.min(1 << 20);
        loop {
            let mut buf = vec![0u8; window as usize];
            src.read_exact_at(0, &mut buf).map_err(|source| Error::Io {
                file: file.clone(),
                source,
            })?;
            match parse_legacy_pickles(&buf, &limits) {
                Ok(p) => {
                    let pos = p.end as u64;
                    return Self::finish_legacy(src, file, limits, p, pos, len);
                }
                Err((section, e)) => {
                    let truncated = matches!(
                        e.kind,
                        PickleErrorKind::UnexpectedEof { .. } | PickleErrorKind::MissingStop
                    );
                    if truncated && window < len {
                        if window >= limits.max_pickle_bytes {
                            return Err(Error::LimitExceeded {
                                file,
                                limit: "max_pickle_bytes",
                                max: limits.max_pickle_bytes,
                            });
                        }
                        window = window.saturating_mul(4).min(len);
                        continue;
                    }
                    return Err(Error::Pickle {
                        file,
                        member: Some(section.into()),
                        source: e,
                    });
                }
            }
        }
    }

    fn finish_legacy(
        src: R,
        file: PathBuf,
        limits: Limits,
        p: LegacyPickles,
        mut pos: u64,
        len: u64,
    ) -> Result<Self, Error> {
        // dtype per root key from the persistent ids in the object pickle
        let mut dtypes: HashMap<String, TorchDtype> = HashMap::new();
        for n in &p.graph.nodes {
            if let Node::Storage(s) = n {
                dtypes.insert(s.key.clone(), s.dtype);
            }
        }
        let mut storages = HashMap::new();
        for key in &p.keys {
            let dt = dtypes.get(key).ok_or_else(|| Error::Invalid {
                file: file.clone(),
                reason: format!("storage key {key:?} listed but never referenced"),
            })?;
            let mut n = [0u8; 8];
            src.read_exact_at(pos, &mut n).map_err(|source| Error::Io {
                file: file.clone(),
                source,
            })?;
            let numel = if p.little_endian {
                u64::from_le_bytes(n)
            } else {
                u64::from_be_bytes(n)
            };
            let bytes = numel.checked_mul(dt.element_size());
            let data = pos.checked_add(8);
            let end = bytes.zip(data).and_then(|(b, d)| d.checked_add(b));
            match (bytes, data, end) {
                (Some(b), Some(d), Some(e)) if e <= len => {
                    storages.insert(key.clone(), StorageInfo {
                        loc: StorageLoc::Raw { offset: d },
                        len: b,
                    });
                    pos = e;
                }
                _ => {
                    return Err(Error::Invalid {
                        file,
                        reason: format!(
                            "storage {key:?} at byte {pos} claims {numel} elements, past the end of the file"
                        ),
                    })
                }
            }
        }
        Self::assemble(
            file,
            (Format::Legacy, !p.little_endian),
            (None, Some(src)),
            p.graph,
            storages,
            limits,
        )
    }

    /// Builds the checkpoint from what an opener decoded, then flattens the
    /// value graph into named tensors and leaves.
    fn assemble(
        file: PathBuf,
        (format, big_endian): (Format, bool),
        (zip, raw): (Option<ZipArchive<R>>, Option<R>),
        graph: Graph,
        storages: HashMap<String, StorageInfo>,
        limits: Limits,
    ) -> Result<Self, Error> {
        let mut ck = TorchCheckpoint {
            file,
            format,
            big_endian,
            zip,
            raw,
            graph,
            tensors: Vec::new(),
            leaves: Vec::new(),
            arrays: Vec::new(),
            storages,
            limits,
        };
        ck.finish()?;
        Ok(ck)
    }

    fn finish(&mut self) -> Result<(), Error> {
        let flat =
            flatten(&self.graph, &self.limits).map_err(|(limit, max)| Error::LimitExceeded {
                file: self.file.clone(),
                limit,
                max,
            })?;
        self.tensors = flat.tensors;
        self.leaves = flat.leaves;
        self.arrays = flat.arrays;
        // every storage referenced must exist with a consistent size
        for n in &self.graph.nodes {
            let s = match n {
                Node::Storage(s) => s,
                Node::Tensor(t) => &t.storage,
                _ => continue,
            };
            let info = self.storages.get(&s.key).ok_or_else(|| Error::Invalid {
                file: self.file.clone(),
                reason: format!("storage {:?} referenced by the pickle is missing", s.key),
            })?;
            let claimed = s.numel.checked_mul(s.dtype.element_size());
            if claimed != Some(info.len) {
                return Err(Error::Invalid {
                    file: self.file.clone(),
                    reason: format!(
                        "storage {:?}: pickle claims {} elements of {}, data has {} bytes",
                        s.key, s.numel, s.dtype, info.len
                    ),
                });
            }
        }
        for t in &self.tensors {
            self.check_bounds(t)?;
        }
        Ok(())
    }

    fn check_bounds(&self, nt: &NamedTensor) -> Result<(), Error> {
        let t = &nt.tensor;
        let oob = |reason: String| Error::TensorOutOfBounds {
            file: self.file.clone(),
            tensor: nt.name.clone(),
            storage: t.storage.key.clone(),
            reason,
        };
        let len = self
            .storages
            .get(&t.storage.key)
            .map(|s| s.len)
            .unwrap_or(0);
        if t.numel().is_none() {
            return Err(oob("element count overflows u64".into()));
        }
        if let Some((start, end)) = t.byte_extent().map_err(oob)? {
            if end > len {
                return Err(oob(format!(
                    "needs bytes {start}..{end} but the storage has {len} bytes"
                )));
            }
        }
        Ok(())
    }

    /// The file name used in errors.
    pub fn path(&self) -> &Path {
        &self.file
    }
    /// Container format.
    pub fn format(&self) -> Format {
        self.format
    }
    /// Whether storages were written big-endian (reads byteswap them).
    pub fn is_big_endian(&self) -> bool {
        self.big_endian
    }
    /// The evaluated object graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }
    /// Flattened named tensors, in pickle order.
    pub fn tensors(&self) -> &[NamedTensor] {
        &self.tensors
    }
    /// Non-tensor leaves with dotted names, as JSON.
    pub fn leaves(&self) -> &[(String, serde_json::Value)] {
        &self.leaves
    }
    /// Numpy arrays found in the object.
    pub fn numpy_arrays(&self) -> &[NamedArray] {
        &self.arrays
    }
    /// Zip anomalies (empty for legacy files).
    pub fn anomalies(&self) -> &[Anomaly] {
        self.zip.as_ref().map(|z| z.anomalies()).unwrap_or(&[])
    }
    /// The zip archive, for zip checkpoints.
    pub fn zip(&self) -> Option<&ZipArchive<R>> {
        self.zip.as_ref()
    }
    /// Find a tensor by name.
    pub fn tensor(&self, name: &str) -> Option<&NamedTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }
    /// Groups of tensor names (2 or more) that share one storage: tied weights or views.
    /// Sorted by storage key; names in pickle order.
    pub fn shared_storages(&self) -> Vec<(String, Vec<String>)> {
        let mut m: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for t in &self.tensors {
            m.entry(&t.tensor.storage.key)
                .or_default()
                .push(t.name.clone());
        }
        m.into_iter()
            .filter(|(_, v)| v.len() > 1)
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }
    /// Byte length of a storage.
    pub fn storage_len(&self, key: &str) -> Option<u64> {
        self.storages.get(key).map(|s| s.len)
    }

    /// Read raw storage bytes (as stored: not byteswapped) at `offset`.
    pub fn read_storage_raw(&self, key: &str, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        let info = self.storages.get(key).ok_or_else(|| Error::Invalid {
            file: self.file.clone(),
            reason: format!("no storage {key:?}"),
        })?;
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > info.len) {
            return Err(Error::Invalid {
                file: self.file.clone(),
                reason: format!("read past the end of storage {key:?}"),
            });
        }
        match (&info.loc, &self.zip, &self.raw) {
            (StorageLoc::Zip(i), Some(z), _) => {
                let e = z.entries().get(*i).ok_or_else(|| Error::Invalid {
                    file: self.file.clone(),
                    reason: "storage entry vanished".into(),
                })?;
                let zerr = |e| Error::zip(&self.file, e);
                if e.method == Method::Stored {
                    z.read_stored_at(e, offset, buf).map_err(zerr)
                } else {
                    let all = z.read(e, self.limits.max_pickle_bytes).map_err(zerr)?;
                    let s = usize::try_from(offset).unwrap_or(usize::MAX);
                    let src =
                        all.get(s..s.saturating_add(buf.len()))
                            .ok_or_else(|| Error::Invalid {
                                file: self.file.clone(),
                                reason: "short storage entry".into(),
                            })?;
                    buf.copy_from_slice(src);
                    Ok(())
                }
            }
            (StorageLoc::Raw { offset: base }, _, Some(r)) => r
                .read_exact_at(base + offset, buf)
                .map_err(|source| Error::Io {
                    file: self.file.clone(),
                    source,
                }),
            _ => Err(Error::Invalid {
                file: self.file.clone(),
                reason: "storage source missing".into(),
            }),
        }
    }

    /// Read storage bytes converted to little-endian for elements of `dtype`.
    pub fn read_storage(
        &self,
        key: &str,
        dtype: TorchDtype,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<(), Error> {
        self.read_storage_raw(key, offset, buf)?;
        if self.big_endian {
            byteswap(buf, dtype.swap_unit() as usize);
        }
        Ok(())
    }

    /// The tensor's elements as a contiguous little-endian buffer.
    pub fn tensor_bytes(&self, t: &Tensor) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.copy_contiguous(t, &mut out)?;
        Ok(out)
    }

    /// Write the tensor's elements in C order, little-endian, to `w`,
    /// handling any strides and offsets; reads storage in bounded chunks.
    /// Returns the number of bytes written.
    pub fn copy_contiguous(&self, t: &Tensor, w: &mut impl Write) -> Result<u64, Error> {
        let Some((start, end)) = t.byte_extent().map_err(|reason| self.oob(t, reason))? else {
            return Ok(0);
        };
        let len = self.storage_len(&t.storage.key).unwrap_or(0);
        if end > len {
            return Err(self.oob(t, format!("needs bytes {start}..{end}, storage has {len}")));
        }
        let es = t.dtype.element_size();
        let io = |source| Error::Io {
            file: self.file.clone(),
            source,
        };
        // contiguous trailing block
        let mut inner = 1u64;
        let mut split = t.shape.len();
        for (i, (&d, &s)) in t.shape.iter().zip(&t.stride).enumerate().rev() {
            if d == 1 || s == inner {
                inner = inner.saturating_mul(d);
                split = i;
            } else {
                break;
            }
        }
        let outer_shape = t.shape.get(..split).unwrap_or(&[]);
        let outer_stride = t.stride.get(..split).unwrap_or(&[]);
        let block = inner.saturating_mul(es);
        let extent = end - start;
        const CHUNK: u64 = 8 << 20;
        let mut written = 0u64;
        if block < 4096 && extent <= 256 << 20 {
            // gather from the (small) extent in memory
            let mut span = vec![0u8; extent as usize];
            self.read_storage(&t.storage.key, t.dtype, start, &mut span)?;
            let mut idx = vec![0u64; outer_shape.len()];
            let mut out = Vec::with_capacity(CHUNK.min(block * 1024) as usize);
            loop {
                let mut el = t.storage_offset;
                for (i, s) in idx.iter().zip(outer_stride) {
                    el += i * s;
                }
                let b = (el * es - start) as usize;
                let piece = span
                    .get(b..b + block as usize)
                    .ok_or_else(|| self.oob(t, "internal extent error".into()))?;
                out.extend_from_slice(piece);
                if out.len() as u64 >= CHUNK {
                    w.write_all(&out).map_err(io)?;
                    written += out.len() as u64;
                    out.clear();
                }
                if !odometer(&mut idx, outer_shape) {
                    break;
                }
            }
            w.write_all(&out).map_err(io)?;
            written += out.len() as u64;
            return Ok(written);
        }
        let mut idx = vec![0u64; outer_shape.len()];
        let mut buf = vec![0u8; block.min(CHUNK) as usize];
        loop {
            let mut el = t.storage_offset;
            for (i, s) in idx.iter().zip(outer_stride) {
                el += i * s;
            }
            let mut off = el * es;
            let mut left = block;
            while left > 0 {
                let n = left.min(CHUNK);
                // keep whole swap units together
                let piece = &mut buf[..n as usize];
                self.read_storage(&t.storage.key, t.dtype, off, piece)?;
                w.write_all(piece).map_err(io)?;
                written += n;
                off += n;
                left -= n;
            }
            if !odometer(&mut idx, outer_shape) {
                break;
            }
        }
        Ok(written)
    }

    fn oob(&self, t: &Tensor, reason: String) -> Error {
        let name = self
            .tensors
            .iter()
            .find(|n| &n.tensor == t)
            .map(|n| n.name.clone())
            .unwrap_or_default();
        Error::TensorOutOfBounds {
            file: self.file.clone(),
            tensor: name,
            storage: t.storage.key.clone(),
            reason,
        }
    }
}

/// Advance a C-order multi-index; false when done.
fn odometer(idx: &mut [u64], shape: &[u64]) -> bool {
    for (i, &d) in idx.iter_mut().zip(shape).rev() {
        *i += 1;
        if *i < d {
            return true;
        }
        *i = 0;
    }
    false
}

/// Reverse bytes within each `unit`-byte group.
pub fn byteswap(buf: &mut [u8], unit: usize) {
    if unit > 1 {
        for c in buf.chunks_exact_mut(unit) {
            c.reverse();
        }
    }
}

struct LegacyPickles {
    graph: Graph,
    keys: Vec<String>,
    little_endian: bool,
    end: usize,
}

fn parse_legacy_pickles(
    buf: &[u8],
    limits: &Limits,
) -> Result<LegacyPickles, (&'static str, PickleError)> {
    let small = limits.clone().max_ops(100_000);
    let magic = evaluate_at(buf, 0, &small).map_err(|e| ("magic number", e))?;
    let mut pos = magic.consumed;
    let proto = evaluate_at(buf, pos, &small).map_err(|e| ("protocol version", e))?;
    pos += proto.consumed;
    let bad = |at: usize, what: &str| {
        PickleError::new(
            at as u64,
            PickleErrorKind::InvalidArgument {
                opcode: "STOP",
                reason: what.to_string(),
            },
        )
    };
    if proto.root != Value::Int(1001) {
        return Err((
            "protocol version",
            bad(pos, "legacy protocol version must be 1001"),
        ));
    }
    let sys = evaluate_at(buf, pos, &small).map_err(|e| ("sys_info", e))?;
    let sys_start = pos;
    pos += sys.consumed;
    let little_endian = match sys.node(&sys.root) {
        Some(Node::Dict(d)) => !matches!(d.get_str("little_endian"), Some(Value::Bool(false))),
        _ => return Err(("sys_info", bad(sys_start, "sys_info must be a dict"))),
    };
    let obj_start = pos;
    let graph = evaluate_at(buf, pos, limits).map_err(|e| ("object", e))?;
    pos += graph.consumed;
    let keys_start = pos;
    let keys_g = evaluate_at(buf, pos, limits).map_err(|e| ("storage keys", e))?;
    pos += keys_g.consumed;
    let _ = obj_start;
    let keys = match keys_g.node(&keys_g.root) {
        Some(Node::List(items)) => items
            .iter()
            .map(|v| match v {
                Value::Str(s) => Some(s.to_string()),
                Value::Int(i) => Some(i.to_string()),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ("storage keys", bad(keys_start, "keys must be strings")))?,
        _ => {
            return Err((
                "storage keys",
                bad(keys_start, "storage key list must be a list"),
            ))
        }
    };
    Ok(LegacyPickles {
        graph,
        keys,
        little_endian,
        end: pos,
    })
}

struct Flat {
    tensors: Vec<NamedTensor>,
    leaves: Vec<(String, serde_json::Value)>,
    arrays: Vec<NamedArray>,
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn key_name(g: &Graph, k: &Value) -> String {
    match k {
        Value::Str(s) => s.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::None => "None".into(),
        Value::Float(f) => f.to_string(),
        Value::BigInt(b) => b.to_decimal(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Obj(_) => match g.node(k) {
            Some(Node::Tuple(items)) => items
                .iter()
                .map(|i| key_name(g, i))
                .collect::<Vec<_>>()
                .join(","),
            Some(Node::Dtype(d)) => d.to_string(),
            Some(n) => format!("<{}>", n.type_name()),
            None => "<?>".into(),
        },
    }
}

/// Flatten a graph into named tensors, numpy arrays and JSON leaves (iteratively).
fn flatten(g: &Graph, limits: &Limits) -> Result<Flat, (&'static str, u64)> {
    let mut out = Flat {
        tensors: Vec::new(),
        leaves: Vec::new(),
        arrays: Vec::new(),
    };
    let mut stack: Vec<(String, Value, usize)> = vec![(String::new(), g.root.clone(), 0)];
    let mut count = 0usize;
    while let Some((name, v, depth)) = stack.pop() {
        count += 1;
        if count > limits.max_flattened_entries {
            return Err(("max_flattened_entries", limits.max_flattened_entries as u64));
        }
        if depth > limits.max_nesting_depth {
            return Err(("max_nesting_depth", limits.max_nesting_depth as u64));
        }
        let children: Vec<(String, Value)> = match g.node(&v) {
            Some(Node::Dict(d)) | Some(Node::OrderedDict { items: d, .. }) if !d.is_empty() => d
                .entries()
                .iter()
                .map(|(k, v)| (join(&name, &key_name(g, k)), v.clone()))
                .collect(),
            Some(Node::List(items)) | Some(Node::Tuple(items)) if !items.is_empty() => items
                .iter()
                .enumerate()
                .map(|(i, v)| (join(&name, &i.to_string()), v.clone()))
                .collect(),
            Some(Node::Tensor(t)) => {
                out.tensors.push(NamedTensor {
                    name,
                    tensor: t.clone(),
                });
                continue;
            }
            Some(Node::NumpyArray(a)) => {
                out.arrays.push(NamedArray {
                    name,
                    array: a.clone(),
                });
                continue;
            }
            _ => {
                let j = to_json(g, &v, limits)
                    .ok_or(("max_nesting_depth", limits.max_nesting_depth as u64))?;
                out.leaves.push((name, j));
                continue;
            }
        };
        for (n, c) in children.into_iter().rev() {
            stack.push((n, c, depth + 1));
        }
    }
    Ok(out)
}

/// Convert a value to JSON (containers recursively, up to the nesting limit).
///
/// Non-JSON values map to: big ints and non-finite floats to strings, bytes to
/// `{"bytes_hex": ...}`, dtypes to `"torch.float32"`, tensors to
/// `{"tensor": {...}}`, storages to `{"storage": key}`.
/// Returns `None` when the nesting limit (or a budget of one million values) is exceeded.
pub fn to_json(g: &Graph, v: &Value, limits: &Limits) -> Option<serde_json::Value> {
    to_json_depth(g, v, limits.max_nesting_depth.min(512), &mut 0).ok()
}

fn to_json_depth(
    g: &Graph,
    v: &Value,
    depth: usize,
    budget: &mut usize,
) -> Result<serde_json::Value, ()> {
    use serde_json::{json, Value as J};
    *budget += 1;
    if depth == 0 || *budget > 1_000_000 {
        return Err(());
    }
    let d = depth - 1;
    Ok(match v {
        Value::None => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => json!(i),
        Value::BigInt(b) => J::String(b.to_decimal()),
        Value::Float(f) => match serde_json::Number::from_f64(*f) {
            Some(n) => J::Number(n),
            None => J::String(if f.is_nan() {
                "NaN".into()
            } else if *f > 0.0 {
                "Infinity".into()
            } else {
                "-Infinity".into()
            }),
        },
        Value::Str(s) => J::String(s.to_string()),
        Value::Bytes(b) => json!({ "bytes_hex": hex(b) }),
        Value::Obj(_) => match g.node(v) {
            None => J::Null,
            Some(n) => match n {
                Node::List(items) | Node::Tuple(items) => J::Array(
                    items
                        .iter()
                        .map(|i| to_json_depth(g, i, d, budget))
                        .collect::<Result<_, _>>()?,
                ),
                Node::Set(s) | Node::FrozenSet(s) => J::Array(
                    s.items()
                        .iter()
                        .map(|i| to_json_depth(g, i, d, budget))
                        .collect::<Result<_, _>>()?,
                ),
                Node::Dict(dict) | Node::OrderedDict { items: dict, .. } => {
                    let mut m = serde_json::Map::new();
                    for (k, val) in dict.entries() {
                        m.insert(key_name(g, k), to_json_depth(g, val, d, budget)?);
                    }
                    J::Object(m)
                }
                Node::ByteArray(b) => json!({ "bytes_hex": hex(b) }),
                Node::Dtype(dt) => J::String(dt.to_string()),
                Node::Storage(s) => json!({ "storage": s.key }),
                Node::Tensor(t) => json!({ "tensor": {
                    "dtype": t.dtype.torch_name(), "shape": t.shape, "storage": t.storage.key } }),
                Node::NumpyArray(a) => {
                    json!({ "numpy_array": { "dtype": a.dtype.descr, "shape": a.shape } })
                }
                Node::NumpyArrayStub => J::Null,
                Node::NumpyDtype(nd) => J::String(nd.descr.clone()),
                Node::NumpyScalar { dtype, data } => numpy_scalar_json(dtype, data),
                Node::Global(gl) => J::String(gl.dotted_name()),
            },
        },
    })
}

fn numpy_scalar_json(dtype: &crate::value::NumpyDtype, data: &[u8]) -> serde_json::Value {
    use serde_json::json;
    let mut b = data.to_vec();
    if dtype.byteorder == '>' {
        b.reverse();
    }
    let arr8 = |b: &[u8]| -> [u8; 8] {
        let mut a = [0u8; 8];
        for (d, s) in a.iter_mut().zip(b) {
            *d = *s;
        }
        a
    };
    let descr = dtype.descr.trim_start_matches(['<', '>', '|', '=']);
    match (descr, b.len()) {
        ("f8", 8) => json!(f64::from_le_bytes(arr8(&b))),
        ("f4", 4) => json!(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ("i8", 8) => json!(i64::from_le_bytes(arr8(&b))),
        ("i4", 4) => json!(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ("u8", 8) => json!(u64::from_le_bytes(arr8(&b))),
        ("u4", 4) => json!(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ("b1", 1) => json!(b[0] != 0),
        _ => json!({ "numpy_scalar": { "dtype": dtype.descr, "bytes_hex": hex(&b) } }),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A flattened object: named tensors, numpy arrays and JSON leaves.
#[derive(Debug, Clone)]
pub struct Flattened {
    /// Named tensors in pickle order.
    pub tensors: Vec<NamedTensor>,
    /// Named numpy arrays.
    pub arrays: Vec<NamedArray>,
    /// Named non-tensor leaves.
    pub leaves: Vec<(String, serde_json::Value)>,
}

/// Flatten any evaluated graph (e.g. a standalone numpy pickle) like a checkpoint body.
pub fn flatten_graph(g: &Graph, limits: &Limits) -> Result<Flattened, Error> {
    let f = flatten(g, limits).map_err(|(limit, max)| Error::LimitExceeded {
        file: PathBuf::new(),
        limit,
        max,
    })?;
    Ok(Flattened {
        tensors: f.tensors,
        arrays: f.arrays,
        leaves: f.leaves,
    })
}
