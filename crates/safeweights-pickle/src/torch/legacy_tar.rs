//! The legacy tar checkpoint format (`torch.save` before PyTorch 0.4), read
//! the way `torch/serialization.py`'s `_legacy_load` -> `legacy_load` does,
//! with every pickle evaluated by the data-only evaluator.
//!
//! Members (all regular files, each at most once):
//! - `sys_info` (optional): pickled dict; `little_endian: False` is refused.
//! - `storages`: pickled count; per storage a pickled `(key, location,
//!   torch.XStorage)` then an 8-byte little-endian element count and the raw
//!   bytes (left in place, read on demand); then a pickled list of storage
//!   views `(view_key, root_key, offset, numel)`.
//! - `tensors`: pickled count; per tensor a pickled `(key, storage_key,
//!   torch.XTensor)` then `<i` ndim, 4 pad bytes, `<{ndim}q` sizes, `<{ndim}q`
//!   strides, `<q` storage offset.
//! - `pickle`: the object, whose persistent ids are `str(key)` of a tensor or
//!   storage.

use super::{StorageInfo, StorageLoc, TorchCheckpoint};
use crate::dtype::TorchDtype;
use crate::error::{Error, PickleError};
use crate::eval::{evaluate_at, evaluate_legacy_tar_object, evaluate_legacy_tar_record, Limits};
use crate::value::{Global, Graph, Node, StorageRef, Tensor, Value};
use safeweights::Source;
use safeweights_archive::tar::{self, TarEntry};
use std::collections::HashMap;
use std::path::PathBuf;

/// Most members a legacy tar checkpoint may have (torch writes 4).
const MAX_MEMBERS: usize = 64;
/// Largest `sys_info` member.
const MAX_SYS_INFO: u64 = 1 << 20;
/// First window read for a record pickle inside `storages`.
const FIRST_WINDOW: u64 = 64 << 10;

/// A storage (or storage view) by key: where its elements start in a root.
#[derive(Debug, Clone)]
struct LegacyStorage {
    root: String,
    dtype: TorchDtype,
    location: String,
    root_numel: u64,
    /// Element offset of this storage inside its root.
    offset: u64,
    /// Number of elements of this storage (view).
    numel: u64,
}

impl LegacyStorage {
    fn storage_ref(&self) -> StorageRef {
        StorageRef {
            key: self.root.clone(),
            dtype: self.dtype,
            untyped: false,
            location: self.location.clone(),
            numel: self.root_numel,
            view_offset: self.offset,
        }
    }
}

/// One member, with helpers producing errors that name it.
struct Member<'a, R> {
    src: &'a R,
    file: &'a PathBuf,
    name: &'static str,
    offset: u64,
    size: u64,
}

impl<R: Source> Member<'_, R> {
    fn err(&self, at: u64, reason: impl Into<String>) -> Error {
        Error::TarMember {
            file: self.file.clone(),
            member: self.name.into(),
            offset: self.offset.saturating_add(at),
            reason: reason.into(),
        }
    }
    fn io(&self, source: std::io::Error) -> Error {
        Error::Io {
            file: self.file.clone(),
            source,
        }
    }
    fn pickle_err(&self, at: u64, mut e: PickleError) -> Error {
        e.offset = e.offset.saturating_add(at);
        Error::Pickle {
            file: self.file.clone(),
            member: Some(self.name.into()),
            source: e,
        }
    }
    /// Read `len` bytes at member offset `at` (bounds already checked by the caller or here).
    fn read(&self, at: u64, len: u64) -> Result<Vec<u8>, Error> {
        let end = at.checked_add(len).filter(|&e| e <= self.size);
        if end.is_none() {
            return Err(self.err(
                at,
                format!(
                    "needs {len} bytes but the member ends after {} more",
                    self.size.saturating_sub(at)
                ),
            ));
        }
        let n = usize::try_from(len).map_err(|_| self.err(at, "read too large"))?;
        let mut buf = vec![0u8; n];
        self.src
            .read_exact_at(self.offset + at, &mut buf)
            .map_err(|e| self.io(e))?;
        Ok(buf)
    }
    /// The whole member, if it is at most `max` bytes.
    fn read_all(&self, max: u64, limit: &'static str) -> Result<Vec<u8>, Error> {
        if self.size > max {
            return Err(Error::LimitExceeded {
                file: self.file.clone(),
                limit,
                max,
            });
        }
        self.read(0, self.size)
    }
    /// Evaluate the pickle at member offset `at`, reading a growing window.
    /// Returns the graph and the offset just past its STOP.
    fn pickle_at(&self, at: u64, limits: &Limits, record: bool) -> Result<(Graph, u64), Error> {
        let left = self.size.saturating_sub(at);
        let cap = left.min(limits.max_pickle_bytes);
        let mut window = left.min(FIRST_WINDOW).min(cap);
        loop {
            let buf = self.read(at, window)?;
            let r = if record {
                evaluate_legacy_tar_record(&buf, 0, limits)
            } else {
                evaluate_at(&buf, 0, limits)
            };
            match r {
                Ok(g) => {
                    let end = at.saturating_add(g.consumed as u64);
                    return Ok((g, end));
                }
                Err(e) => {
                    let truncated = matches!(
                        e.kind,
                        crate::PickleErrorKind::UnexpectedEof { .. }
                            | crate::PickleErrorKind::MissingStop
                    );
                    if truncated && window < cap {
                        window = window.saturating_mul(4).min(cap);
                        continue;
                    }
                    if truncated && window < left {
                        return Err(Error::LimitExceeded {
                            file: self.file.clone(),
                            limit: "max_pickle_bytes",
                            max: limits.max_pickle_bytes,
                        });
                    }
                    return Err(self.pickle_err(at, e));
                }
            }
        }
    }
    /// A pickled non-negative count at `at`, at most `max`.
    fn count_at(&self, at: u64, limits: &Limits, what: &str) -> Result<(u64, u64), Error> {
        let (g, end) = self.pickle_at(at, limits, false)?;
        let n = match g.root {
            Value::Int(n) if n >= 0 => n as u64,
            ref v => {
                return Err(self.err(
                    at,
                    format!(
                        "{what} count must be a non-negative int, got {}",
                        v.type_name()
                    ),
                ))
            }
        };
        let max = limits.max_nodes as u64;
        if n > max {
            return Err(Error::LimitExceeded {
                file: self.file.clone(),
                limit: "max_nodes",
                max,
            });
        }
        Ok((n, end))
    }
    fn u64_at(&self, at: u64) -> Result<[u8; 8], Error> {
        let b = self.read(at, 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&b);
        Ok(a)
    }
}

fn tuple<'g>(g: &'g Graph, v: &Value, n: usize) -> Option<&'g [Value]> {
    match g.node(v) {
        Some(Node::Tuple(items)) | Some(Node::List(items)) if items.len() == n => Some(items),
        _ => None,
    }
}

fn ascii(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) => Some(s.to_string()),
        Value::Bytes(b) if b.is_ascii() => std::str::from_utf8(b).ok().map(String::from),
        _ => None,
    }
}

fn non_negative(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) if *i >= 0 => Some(*i as u64),
        _ => None,
    }
}

impl<R: Source> TorchCheckpoint<R> {
    pub(super) fn open_legacy_tar(src: R, file: PathBuf, limits: Limits) -> Result<Self, Error> {
        let t = tar::parse(&src, MAX_MEMBERS).map_err(|source| Error::Io {
            file: file.clone(),
            source,
        })?;
        if let Some(e) = t.error {
            return Err(Error::tar(file, e));
        }
        if t.more {
            return Err(Error::LimitExceeded {
                file,
                limit: "legacy tar members",
                max: MAX_MEMBERS as u64,
            });
        }
        let find = |name: &'static str| -> Result<Option<&TarEntry>, Error> {
            let mut found: Option<&TarEntry> = None;
            for e in t.entries.iter().filter(|e| e.name == name) {
                if let Some(first) = found {
                    return Err(Error::TarMember {
                        file: file.clone(),
                        member: name.into(),
                        offset: e.header_offset,
                        reason: format!(
                            "appears twice (first header at byte {}): ambiguous",
                            first.header_offset
                        ),
                    });
                }
                if !tar::is_regular(e.kind) {
                    return Err(Error::TarMember {
                        file: file.clone(),
                        member: name.into(),
                        offset: e.header_offset,
                        reason: format!("is not a regular file (type {:?})", char::from(e.kind)),
                    });
                }
                found = Some(e);
            }
            Ok(found)
        };
        let member = |name: &'static str| -> Result<Member<'_, R>, Error> {
            let e = find(name)?.ok_or_else(|| Error::NotACheckpoint {
                file: file.clone(),
                reason: format!("tar archive without a {name:?} member"),
            })?;
            Ok(Member {
                src: &src,
                file: &file,
                name,
                offset: e.offset,
                size: e.size,
            })
        };
        let pickle = member("pickle")?;
        let tensors_m = member("tensors")?;
        let storages_m = member("storages")?;
        if find("sys_info")?.is_some() {
            let m = member("sys_info")?;
            let data = m.read_all(MAX_SYS_INFO, "sys_info member bytes")?;
            let g = evaluate_at(&data, 0, &limits).map_err(|e| m.pickle_err(0, e))?;
            match g.node(&g.root) {
                Some(Node::Dict(d)) => {
                    if d.get_str("little_endian") == Some(&Value::Bool(false)) {
                        return Err(m.err(
                            0,
                            "written on a big-endian machine; such tar checkpoints are not supported",
                        ));
                    }
                }
                _ => return Err(m.err(0, "sys_info is not a dict")),
            }
        }

        // storages
        let mut objects: HashMap<i64, LegacyStorage> = HashMap::new();
        let mut storages: HashMap<String, StorageInfo> = HashMap::new();
        let m = &storages_m;
        let (count, mut pos) = m.count_at(0, &limits, "storage")?;
        for _ in 0..count {
            let rec_at = pos;
            let (g, end) = m.pickle_at(pos, &limits, false)?;
            let bad = || {
                m.err(
                    rec_at,
                    "storage record must be (int key, location, torch storage class)",
                )
            };
            let items = tuple(&g, &g.root, 3).ok_or_else(bad)?;
            let key = match items[0] {
                Value::Int(k) => k,
                _ => return Err(bad()),
            };
            let location = ascii(&items[1]).ok_or_else(bad)?;
            let dtype = match g.node(&items[2]) {
                Some(Node::Global(Global::StorageClass { dtype, .. })) => *dtype,
                _ => return Err(bad()),
            };
            if objects.contains_key(&key) {
                return Err(m.err(rec_at, format!("storage key {key} appears twice")));
            }
            let numel = u64::from_le_bytes(m.u64_at(end)?);
            let data = end + 8;
            let bytes = numel.checked_mul(dtype.element_size());
            let data_end = bytes.and_then(|b| data.checked_add(b));
            let Some((bytes, data_end)) = bytes.zip(data_end).filter(|(_, e)| *e <= m.size) else {
                return Err(m.err(
                    end,
                    format!(
                        "storage {key} declares {numel} elements of {dtype} but the member has only {} bytes left",
                        m.size.saturating_sub(data)
                    ),
                ));
            };
            let root = key.to_string();
            storages.insert(
                root.clone(),
                StorageInfo {
                    loc: StorageLoc::Raw {
                        offset: m.offset + data,
                    },
                    len: bytes,
                },
            );
            objects.insert(
                key,
                LegacyStorage {
                    root,
                    dtype,
                    location,
                    root_numel: numel,
                    offset: 0,
                    numel,
                },
            );
            pos = data_end;
        }
        // storage views
        let views_at = pos;
        let (g, _) = m.pickle_at(pos, &limits, false)?;
        let views = match g.node(&g.root) {
            Some(Node::List(items)) => items.clone(),
            _ => return Err(m.err(views_at, "storage views must be a list")),
        };
        for v in &views {
            let bad = || {
                m.err(
                    views_at,
                    "storage view must be (view key, root key, offset, numel)",
                )
            };
            let it = tuple(&g, v, 4).ok_or_else(bad)?;
            let (Value::Int(target), Value::Int(root_key)) = (&it[0], &it[1]) else {
                return Err(bad());
            };
            let (offset, numel) = non_negative(&it[2])
                .zip(non_negative(&it[3]))
                .ok_or_else(bad)?;
            if objects.contains_key(target) {
                return Err(m.err(
                    views_at,
                    format!("storage view key {target} is already a storage"),
                ));
            }
            let root = objects.get(root_key).ok_or_else(|| {
                m.err(
                    views_at,
                    format!("storage view {target} names unknown storage {root_key}"),
                )
            })?;
            if offset.checked_add(numel).is_none_or(|e| e > root.numel) {
                return Err(m.err(
                    views_at,
                    format!(
                        "storage view {target} covers elements {offset}..+{numel} of storage {root_key}, which has {}",
                        root.numel
                    ),
                ));
            }
            let view = LegacyStorage {
                offset: root.offset + offset,
                numel,
                ..root.clone()
            };
            objects.insert(*target, view);
        }

        // tensors
        let m = &tensors_m;
        let data = m.read_all(limits.max_pickle_bytes, "max_pickle_bytes")?;
        let (count, mut pos) = m.count_at(0, &limits, "tensor")?;
        let mut tensors: HashMap<i64, Tensor> = HashMap::new();
        for _ in 0..count {
            let rec_at = pos;
            let start = usize::try_from(pos).map_err(|_| m.err(pos, "offset too large"))?;
            let g = evaluate_legacy_tar_record(&data, start, &limits)
                .map_err(|e| m.pickle_err(0, e))?;
            let bad = || {
                m.err(
                    rec_at,
                    "tensor record must be (int key, int storage key, tensor class)",
                )
            };
            let items = tuple(&g, &g.root, 3).ok_or_else(bad)?;
            let (Value::Int(key), Value::Int(sid)) = (&items[0], &items[1]) else {
                return Err(bad());
            };
            if objects.contains_key(key) || tensors.contains_key(key) {
                return Err(m.err(rec_at, format!("tensor key {key} is already used")));
            }
            let storage = objects.get(sid).ok_or_else(|| {
                m.err(rec_at, format!("tensor {key} names unknown storage {sid}"))
            })?;
            let mut at = pos.saturating_add(g.consumed as u64);
            let take = |at: &mut u64, n: u64| -> Result<&[u8], Error> {
                let s = usize::try_from(*at).ok();
                let e = at.checked_add(n).and_then(|e| usize::try_from(e).ok());
                let b = s.zip(e).and_then(|(s, e)| data.get(s..e)).ok_or_else(|| {
                    m.err(
                        *at,
                        format!("tensor {key}: metadata runs past the end of the member"),
                    )
                })?;
                *at += n;
                Ok(b)
            };
            let meta_at = at;
            let nd = take(&mut at, 8)?;
            let ndim = i32::from_le_bytes([nd[0], nd[1], nd[2], nd[3]]);
            let ndim = usize::try_from(ndim)
                .ok()
                .filter(|&n| n <= limits.max_dims)
                .ok_or_else(|| {
                    m.err(
                        meta_at,
                        format!(
                            "tensor {key}: ndim {ndim} is negative or above max_dims ({})",
                            limits.max_dims
                        ),
                    )
                })?;
            let read_i64s = |at: &mut u64, n: usize, what: &str| -> Result<Vec<u64>, Error> {
                let here = *at;
                let b = take(at, 8 * n as u64)?;
                b.chunks_exact(8)
                    .map(|c| {
                        let mut a = [0u8; 8];
                        a.copy_from_slice(c);
                        u64::try_from(i64::from_le_bytes(a))
                            .map_err(|_| m.err(here, format!("tensor {key}: negative {what}")))
                    })
                    .collect()
            };
            let shape = read_i64s(&mut at, ndim, "size")?;
            let stride = read_i64s(&mut at, ndim, "stride")?;
            let offset = read_i64s(&mut at, 1, "storage offset")?[0];
            let t = Tensor {
                storage: storage.storage_ref(),
                dtype: storage.dtype,
                storage_offset: storage.offset.checked_add(offset).ok_or_else(|| {
                    m.err(meta_at, format!("tensor {key}: storage offset overflows"))
                })?,
                shape,
                stride,
                requires_grad: false,
                is_parameter: false,
            };
            // the view must fit in the storage (or storage view) it names
            let fits = match t.byte_extent() {
                Ok(None) => true,
                Ok(Some((_, end))) => {
                    let view_end = storage
                        .offset
                        .checked_add(storage.numel)
                        .and_then(|e| e.checked_mul(storage.dtype.element_size()));
                    view_end.is_some_and(|v| end <= v)
                }
                Err(_) => false,
            };
            if !fits {
                return Err(Error::TensorOutOfBounds {
                    file: m.file.clone(),
                    tensor: format!("tensors member key {key}"),
                    storage: sid.to_string(),
                    reason: format!(
                        "size {:?}, stride {:?}, offset {offset} do not fit in {} elements",
                        t.shape, t.stride, storage.numel
                    ),
                });
            }
            tensors.insert(*key, t);
            pos = at;
        }

        // the object
        let mut nodes: HashMap<i64, Node> = objects
            .iter()
            .map(|(k, s)| (*k, Node::Storage(s.storage_ref())))
            .collect();
        nodes.extend(tensors.into_iter().map(|(k, t)| (k, Node::Tensor(t))));
        let data = pickle.read_all(limits.max_pickle_bytes, "max_pickle_bytes")?;
        let graph = evaluate_legacy_tar_object(&data, &limits, &nodes)
            .map_err(|e| pickle.pickle_err(0, e))?;
        drop(nodes);
        TorchCheckpoint::assemble(
            file,
            (super::Format::LegacyTar, false),
            (None, Some(src)),
            graph,
            storages,
            limits,
        )
    }
}
