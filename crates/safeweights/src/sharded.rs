//! Sharded checkpoints: `model-00001-of-00003.safetensors` files and a
//! `model.safetensors.index.json` that maps each tensor to its shard.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result, ShardError};
use crate::header::{Metadata, TensorInfo};
use crate::reader::{OpenOptions, SafeTensorsFile, TensorView};
use crate::writer::{StreamingWriter, TensorSpec, WriteOptions};

/// The conventional index file name.
pub const INDEX_FILE_NAME: &str = "model.safetensors.index.json";

/// The contents of a `*.safetensors.index.json`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ShardIndex {
    /// The `metadata` object (`total_size` and anything else).
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Tensor name → shard file name.
    pub weight_map: BTreeMap<String, String>,
}

impl ShardIndex {
    /// Parses index JSON.
    pub fn parse(text: &str) -> std::result::Result<ShardIndex, ShardError> {
        let invalid = |reason: String| ShardError::InvalidIndex { reason };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| invalid("not a JSON object".into()))?;
        let metadata = match obj.get("metadata") {
            None | Some(serde_json::Value::Null) => serde_json::Map::new(),
            Some(serde_json::Value::Object(m)) => m.clone(),
            Some(_) => return Err(invalid("\"metadata\" is not an object".into())),
        };
        let map = obj
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| invalid("missing \"weight_map\" object".into()))?;
        let mut weight_map = BTreeMap::new();
        for (tensor, shard) in map {
            let shard = shard
                .as_str()
                .ok_or_else(|| invalid(format!("shard of {tensor:?} is not a string")))?;
            weight_map.insert(tensor.clone(), shard.to_owned());
        }
        Ok(ShardIndex {
            metadata,
            weight_map,
        })
    }

    /// `metadata.total_size`, if present.
    pub fn total_size(&self) -> Option<u64> {
        self.metadata.get("total_size").and_then(|v| v.as_u64())
    }

    /// The JSON text as the Python ecosystem writes it
    /// (`json.dumps(index, indent=2, sort_keys=True)` and a newline).
    pub fn to_json(&self) -> String {
        let mut root = serde_json::Map::new();
        root.insert(
            "metadata".into(),
            serde_json::Value::Object(self.metadata.clone()),
        );
        let map = self
            .weight_map
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        root.insert("weight_map".into(), serde_json::Value::Object(map));
        let mut out = String::new();
        python_json(&serde_json::Value::Object(root), 0, &mut out);
        out.push('\n');
        out
    }
}

/// Python's `json.dumps(v, indent=2, sort_keys=True)` (ASCII-escaped).
fn python_json(value: &serde_json::Value, depth: usize, out: &mut String) {
    use serde_json::Value;
    let pad = |n: usize| "  ".repeat(n);
    match value {
        Value::Object(map) if !map.is_empty() => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push_str("{\n");
            for (i, k) in keys.iter().enumerate() {
                out.push_str(&pad(depth + 1));
                python_string(k, out);
                out.push_str(": ");
                python_json(&map[*k], depth + 1, out);
                if i + 1 < keys.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&pad(depth));
            out.push('}');
        }
        Value::Array(items) if !items.is_empty() => {
            out.push_str("[\n");
            for (i, v) in items.iter().enumerate() {
                out.push_str(&pad(depth + 1));
                python_json(v, depth + 1, out);
                if i + 1 < items.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&pad(depth));
            out.push(']');
        }
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
        Value::String(s) => python_string(s, out),
        other => out.push_str(&other.to_string()),
    }
}

fn python_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The largest index file read: the header's limit (an index lists no more
/// names than the headers of its shards).
pub const MAX_INDEX_LEN: u64 = crate::header::MAX_HEADER_LEN;

/// Reads an index file, refusing one over [`MAX_INDEX_LEN`] before reading it.
fn read_index(path: &Path) -> Result<String> {
    use std::io::Read;
    let io_err = |e| Error::io(path, e);
    let file = crate::source::open_regular(path).map_err(io_err)?;
    let too_large = |len| Error::Shard {
        file: path.display().to_string(),
        source: ShardError::IndexTooLarge {
            len,
            limit: MAX_INDEX_LEN,
        },
    };
    let len = file.metadata().map_err(io_err)?.len();
    if len > MAX_INDEX_LEN {
        return Err(too_large(len));
    }
    let mut text = String::new();
    // Bounded even if the file grows after the size check.
    file.take(MAX_INDEX_LEN + 1)
        .read_to_string(&mut text)
        .map_err(io_err)?;
    if text.len() as u64 > MAX_INDEX_LEN {
        return Err(too_large(text.len() as u64));
    }
    Ok(text)
}

/// Checks a folder's safetensors files (no index): each is a regular file,
/// and each numbered set (`-0000i-of-0000n`) is complete.
fn check_shard_set(files: &[PathBuf]) -> std::result::Result<(), ShardError> {
    let name_of = |p: &PathBuf| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    for f in files {
        if !f.is_file() {
            return Err(ShardError::NotAFile { shard: name_of(f) });
        }
    }
    let names: std::collections::BTreeSet<String> = files.iter().map(name_of).collect();
    let sets: std::collections::BTreeSet<(&str, &str)> = names
        .iter()
        .filter_map(|n| crate::folder::numbered_set(n))
        .collect();
    for (prefix, count_text) in sets {
        let width = count_text.len();
        let Ok(count) = count_text.parse::<usize>() else {
            continue;
        };
        for i in 1..=count {
            let shard = format!("{prefix}-{i:0width$}-of-{count_text}.safetensors");
            if !names.contains(&shard) {
                return Err(ShardError::MissingShard { shard, count });
            }
        }
    }
    Ok(())
}

/// The file name of shard `index` (0-based) of `count`, with the usual
/// pattern; a single shard is `{prefix}.safetensors`.
pub fn shard_file_name(prefix: &str, index: usize, count: usize) -> String {
    if count == 1 {
        format!("{prefix}.safetensors")
    } else {
        format!("{prefix}-{:05}-of-{count:05}.safetensors", index + 1)
    }
}

/// Groups tensors of the given byte sizes, in order, into shards of at most
/// `max_shard_size` bytes (a tensor larger than that gets a shard of its own).
/// Returns each shard's tensor indices.
pub fn plan_shards(sizes: &[u64], max_shard_size: u64) -> Vec<Vec<usize>> {
    let mut shards: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut current_size = 0u64;
    for (i, &size) in sizes.iter().enumerate() {
        if !current.is_empty() && current_size.saturating_add(size) > max_shard_size {
            shards.push(std::mem::take(&mut current));
            current_size = 0;
        }
        current.push(i);
        current_size = current_size.saturating_add(size);
    }
    if !current.is_empty() || shards.is_empty() {
        shards.push(current);
    }
    shards
}

/// Parses a size like `5GB`, `500MB`, `1.5GiB`, `1000` (bytes). Decimal units
/// are powers of ten, as in the Hugging Face ecosystem.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KIB" => 1024.0,
        "MIB" => 1024.0 * 1024.0,
        "GIB" => 1024.0 * 1024.0 * 1024.0,
        "TIB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = num * mult;
    (bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// A checkpoint of one or more safetensors files opened as one.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    files: Vec<SafeTensorsFile>,
    /// Tensor name → index into `files`.
    location: BTreeMap<String, usize>,
    index: Option<ShardIndex>,
    origin: PathBuf,
}

impl Checkpoint {
    /// Opens a `.safetensors` file, a `*.safetensors.index.json`, or a folder
    /// holding either, with strict defaults.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, &OpenOptions::new())
    }

    /// Opens with options applied to every shard.
    pub fn open_with(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Self> {
        let path = path.as_ref();
        let meta = fs_err::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            return Self::open_dir(path, options);
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        if name.ends_with(".index.json") {
            return Self::open_index(path, options);
        }
        let file = options.open(path)?;
        Self::from_files(vec![file], None, path)
    }

    /// A folder: its one checkpoint, or its default one (see
    /// [`crate::folder`]); several without a default are refused, naming
    /// them.
    fn open_dir(dir: &Path, options: &OpenOptions) -> Result<Self> {
        let shard_err = |source| Error::Shard {
            file: dir.display().to_string(),
            source,
        };
        let found = crate::folder::checkpoints(dir)?;
        if found.is_empty() {
            let pickles = crate::folder::pickle_weights(dir);
            if !pickles.is_empty() {
                return Err(shard_err(ShardError::PickleWeights(pickles.join(", "))));
            }
            return Err(shard_err(ShardError::Empty));
        }
        // an entry named like a checkpoint that is not a file is named
        for c in found.iter().filter(|c| c.index.is_none()) {
            check_shard_set(&c.files).map_err(shard_err)?;
        }
        let Some(chosen) = crate::folder::default_checkpoint(&found) else {
            let names: Vec<&str> = found.iter().map(|c| c.name.as_str()).collect();
            if found.iter().all(|c| c.index.is_some()) {
                return Err(shard_err(ShardError::AmbiguousIndex(names.join(", "))));
            }
            return Err(shard_err(ShardError::SeveralCheckpoints(names.join(", "))));
        };
        if let Some(index) = &chosen.index {
            return Self::open_index(index, options);
        }
        let opened = chosen
            .files
            .iter()
            .map(|f| options.open(f))
            .collect::<Result<Vec<_>>>()?;
        Self::from_files(opened, None, dir)
    }

    fn open_index(path: &Path, options: &OpenOptions) -> Result<Self> {
        let shard_err = |source| Error::Shard {
            file: path.display().to_string(),
            source,
        };
        let text = read_index(path)?;
        let index = ShardIndex::parse(&text).map_err(shard_err)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut shard_names: Vec<&String> = index.weight_map.values().collect();
        shard_names.sort();
        shard_names.dedup();
        for (tensor, shard) in &index.weight_map {
            let p = Path::new(shard);
            let safe =
                !shard.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
            if !safe {
                return Err(shard_err(ShardError::UnsafeShardPath {
                    tensor: tensor.clone(),
                    shard: shard.clone(),
                }));
            }
        }
        // A lexically plain path can still leave the folder through a
        // symlinked directory (`sub/x.safetensors` with `sub -> ../secret`):
        // where both resolve, the shard must resolve inside the folder. (A
        // symlinked shard *file* stays allowed: the Hugging Face cache links
        // every file to `../../blobs/HASH`.)
        if let Ok(root) = dir.canonicalize() {
            for (tensor, shard) in &index.weight_map {
                let parent = dir.join(shard);
                let parent = parent.parent().unwrap_or(dir);
                let inside = match parent.canonicalize() {
                    Ok(p) => p.starts_with(&root),
                    Err(_) => true, // missing: opening it reports the I/O error
                };
                if !inside {
                    return Err(shard_err(ShardError::UnsafeShardPath {
                        tensor: tensor.clone(),
                        shard: shard.clone(),
                    }));
                }
            }
        }
        let files = shard_names
            .iter()
            .map(|s| options.open(dir.join(s)))
            .collect::<Result<Vec<_>>>()?;
        let strict = options.is_strict();
        let by_shard: HashMap<&str, usize> = shard_names
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), i))
            .collect();
        // Every listed tensor must be in its shard.
        for (tensor, shard) in &index.weight_map {
            let file = &files[by_shard[shard.as_str()]];
            if file.header().get(tensor).is_none() {
                return Err(shard_err(ShardError::MissingFromShard {
                    tensor: tensor.clone(),
                    shard: shard.clone(),
                }));
            }
        }
        // No tensor may be in two shards; unlisted tensors are refused when strict.
        let mut location = BTreeMap::new();
        for (i, file) in files.iter().enumerate() {
            for info in file.header().tensors() {
                let listed = index.weight_map.get(&info.name);
                match listed {
                    Some(s) if s == shard_names[i] => {
                        location.insert(info.name.clone(), i);
                    }
                    Some(s) => {
                        return Err(shard_err(ShardError::DuplicateTensor {
                            tensor: info.name.clone(),
                            first: s.clone(),
                            second: shard_names[i].clone(),
                        }))
                    }
                    None if strict => {
                        return Err(shard_err(ShardError::NotInIndex {
                            tensor: info.name.clone(),
                            shard: shard_names[i].clone(),
                        }))
                    }
                    None => {}
                }
            }
        }
        Ok(Checkpoint {
            files,
            location,
            index: Some(index),
            origin: path.to_owned(),
        })
    }

    fn from_files(
        files: Vec<SafeTensorsFile>,
        index: Option<ShardIndex>,
        origin: &Path,
    ) -> Result<Self> {
        let mut location: BTreeMap<String, usize> = BTreeMap::new();
        for (i, file) in files.iter().enumerate() {
            for info in file.header().tensors() {
                if let Some(&j) = location.get(&info.name) {
                    return Err(Error::Shard {
                        file: origin.display().to_string(),
                        source: ShardError::DuplicateTensor {
                            tensor: info.name.clone(),
                            first: files[j].name().to_owned(),
                            second: file.name().to_owned(),
                        },
                    });
                }
                location.insert(info.name.clone(), i);
            }
        }
        Ok(Checkpoint {
            files,
            location,
            index,
            origin: origin.to_owned(),
        })
    }

    /// The shard files.
    pub fn files(&self) -> &[SafeTensorsFile] {
        &self.files
    }

    /// The index, when opened through one.
    pub fn index(&self) -> Option<&ShardIndex> {
        self.index.as_ref()
    }

    /// What was opened.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.location.keys().map(|s| s.as_str())
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.location.len()
    }

    /// Whether there is no tensor.
    pub fn is_empty(&self) -> bool {
        self.location.is_empty()
    }

    /// The file holding `name`.
    pub fn file_of(&self, name: &str) -> Result<&SafeTensorsFile> {
        self.location
            .get(name)
            .and_then(|&i| self.files.get(i))
            .ok_or_else(|| Error::TensorNotFound {
                file: self.origin.display().to_string(),
                tensor: name.to_owned(),
            })
    }

    /// A tensor's entry.
    pub fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.file_of(name)?.info(name)
    }

    /// A tensor's bytes.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        self.file_of(name)?.tensor(name)
    }

    /// Every tensor with its file, in file order.
    pub fn tensors(&self) -> impl Iterator<Item = (&SafeTensorsFile, &TensorInfo)> {
        self.files
            .iter()
            .flat_map(|f| f.header().tensors().iter().map(move |t| (f, t)))
            .filter(|(_, t)| self.location.contains_key(&t.name))
    }

    /// The metadata of the first shard (the convention is that every shard
    /// carries the same, e.g. `{"format": "pt"}`).
    pub fn metadata(&self) -> Option<&Metadata> {
        self.files.first().and_then(|f| f.header().metadata())
    }

    /// Sum of all tensors' byte sizes.
    pub fn total_size(&self) -> u64 {
        self.tensors().map(|(_, t)| t.byte_len() as u64).sum()
    }
}

/// Progress of a long copy, in bytes.
pub type Progress<'a> = &'a mut dyn FnMut(u64);

/// Copies tensors from `src` into one or more new files in `out_dir` with at
/// most `max_shard_size` bytes each (`None`: one file named `{prefix}.safetensors`),
/// plus an index when there are several. Streams in chunks of `chunk` bytes.
/// Returns the paths written, index last.
///
/// The write is atomic as a whole: every file is written into a staging folder
/// beside `out_dir` and moved in only once all are complete, so a run that
/// fails (disk full, a bad tensor) leaves `out_dir` exactly as it was. When
/// `out_dir` already holds a checkpoint of the same `prefix`, its files are
/// set aside while the new ones are moved in (shards first, the index last)
/// and deleted afterwards; files of other names in `out_dir` are left alone.
pub fn write_sharded(
    src: &Checkpoint,
    out_dir: &Path,
    prefix: &str,
    max_shard_size: Option<u64>,
    metadata: Option<&Metadata>,
    progress: Progress<'_>,
) -> Result<Vec<PathBuf>> {
    let stage = Staging::beside(out_dir)?;
    let names = write_shards_into(
        src,
        stage.path(),
        prefix,
        max_shard_size,
        metadata,
        progress,
    )?;
    stage.publish(out_dir, prefix, &names)?;
    Ok(names.iter().map(|n| out_dir.join(n)).collect())
}

/// Writes the shards and the index into `dir`; returns their file names,
/// index last.
fn write_shards_into(
    src: &Checkpoint,
    out_dir: &Path,
    prefix: &str,
    max_shard_size: Option<u64>,
    metadata: Option<&Metadata>,
    progress: Progress<'_>,
) -> Result<Vec<String>> {
    let infos: Vec<(&SafeTensorsFile, &TensorInfo)> = src.tensors().collect();
    let sizes: Vec<u64> = infos.iter().map(|(_, t)| t.byte_len() as u64).collect();
    let groups = plan_shards(&sizes, max_shard_size.unwrap_or(u64::MAX));
    let mut written = Vec::new();
    let mut weight_map = BTreeMap::new();
    let count = groups.len();
    for (g, members) in groups.iter().enumerate() {
        let name = shard_file_name(prefix, g, count);
        let path = out_dir.join(&name);
        let specs = members
            .iter()
            .map(|&i| {
                let t = infos[i].1;
                TensorSpec::new(t.name.clone(), t.dtype, t.shape.clone())
            })
            .collect();
        let mut writer = StreamingWriter::create(&path, specs, metadata)?;
        for &i in members {
            let (file, info) = infos[i];
            copy_tensor(file, info, &mut writer, progress)?;
            weight_map.insert(info.name.clone(), name.clone());
        }
        writer.finish()?;
        written.push(name);
    }
    if count > 1 {
        let mut index = ShardIndex {
            weight_map,
            ..Default::default()
        };
        index
            .metadata
            .insert("total_size".into(), sizes.iter().sum::<u64>().into());
        let name = format!("{prefix}.safetensors.index.json");
        let path = out_dir.join(&name);
        let atomic = crate::writer::AtomicFile::create(&path)?;
        std::io::Write::write_all(&mut atomic.file(), index.to_json().as_bytes())
            .map_err(|e| Error::io(&path, e))?;
        atomic.commit()?;
        written.push(name);
    }
    Ok(written)
}

/// Suffix of staging folders, recognised (and removed once stale) by later
/// writes to the same folder.
const STAGE_SUFFIX: &str = ".sw-stage";

/// A folder beside the target where a sharded checkpoint is written before it
/// is moved into place. Removed with its contents when dropped.
struct Staging {
    path: PathBuf,
    /// The folder holding both the staging folder and the target.
    parent: PathBuf,
}

impl Staging {
    fn beside(out_dir: &Path) -> Result<Staging> {
        let parent = match out_dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        fs_err::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        crate::atomic::remove_stale(&parent, out_dir, STAGE_SUFFIX);
        let path = crate::atomic::temp_path(&parent, out_dir, STAGE_SUFFIX);
        fs_err::create_dir(&path).map_err(|e| Error::io(&path, e))?;
        Ok(Staging { path, parent })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the staged files `names` (index last) into `out_dir`, setting
    /// aside and then deleting the files of the checkpoint `prefix` it held.
    fn publish(self, out_dir: &Path, prefix: &str, names: &[String]) -> Result<()> {
        if !out_dir.exists() {
            // Nothing to keep: the staging folder becomes the target.
            fs_err::rename(&self.path, out_dir).map_err(|e| Error::io(out_dir, e))?;
            return sync_dir(&self.parent);
        }
        let old = old_checkpoint_files(out_dir, prefix)?;
        let aside = self.path.join(".replaced");
        fs_err::create_dir(&aside).map_err(|e| Error::io(&aside, e))?;
        let mut moved_aside = Vec::new();
        let mut moved_in = Vec::new();
        let result = (|| {
            for name in &old {
                rename(&out_dir.join(name), &aside.join(name))?;
                moved_aside.push(name);
            }
            for name in names {
                rename(&self.path.join(name), &out_dir.join(name))?;
                moved_in.push(name);
            }
            sync_dir(out_dir)
        })();
        if result.is_err() {
            // Put everything back as it was.
            for name in moved_in {
                let _ = fs_err::rename(out_dir.join(name), self.path.join(name));
            }
            for name in moved_aside {
                let _ = fs_err::rename(aside.join(name), out_dir.join(name));
            }
        }
        result
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs_err::remove_dir_all(&self.path);
    }
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    fs_err::rename(from, to).map_err(|e| Error::io(to, e))
}

/// Syncs `dir`, so that renames into it are durable.
fn sync_dir(dir: &Path) -> Result<()> {
    crate::atomic::sync_dir(dir).map_err(|e| Error::io(dir, e))
}

/// The files of the checkpoint named `prefix` in `dir`: `prefix.safetensors`,
/// its numbered shards and its index.
fn old_checkpoint_files(dir: &Path, prefix: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in fs_err::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let ours = name == format!("{prefix}.safetensors")
            || name == format!("{prefix}.safetensors.index.json")
            || crate::folder::numbered_set(&name).is_some_and(|(p, _)| p == prefix);
        if ours {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// Chunk size for streaming copies.
pub const COPY_CHUNK: usize = 16 << 20;

/// Streams one tensor's bytes from `file` into `writer`.
pub fn copy_tensor(
    file: &SafeTensorsFile,
    info: &TensorInfo,
    writer: &mut StreamingWriter,
    progress: Progress<'_>,
) -> Result<()> {
    let range = file.file_range(info);
    let mut buf = vec![0u8; COPY_CHUNK.min(info.byte_len())];
    let mut at = range.start;
    while at < range.end {
        let n = ((range.end - at) as usize).min(buf.len());
        let chunk = &mut buf[..n];
        file.read_at(at, chunk)?;
        writer.write(&info.name, chunk)?;
        at += n as u64;
        progress(n as u64);
    }
    Ok(())
}

/// Streams every tensor of `src` into one file at `out`, keeping the first
/// shard's metadata, and returns the size of the file written.
///
/// The file is written atomically (a temporary file renamed into place), so
/// an existing `out` is replaced only once the new file is complete; callers
/// that must not replace a file check first. The layout is deterministic:
/// merging the shards of a file written by this crate gives back the same
/// bytes.
///
/// ```
/// use safeweights::{sharded, write_file, Checkpoint, Dtype, TensorRef};
///
/// let dir = tempfile::tempdir()?;
/// let data = [0u8; 8];
/// let tensors: Vec<TensorRef> = ["a", "b", "c"]
///     .iter()
///     .map(|&name| TensorRef { name, dtype: Dtype::F32, shape: &[2], data: &data })
///     .collect();
/// write_file(dir.path().join("one.safetensors"), &tensors, None)?;
/// let one = Checkpoint::open(dir.path().join("one.safetensors"))?;
/// sharded::write_sharded(&one, &dir.path().join("shards"), "model", Some(8), None, &mut |_| {})?;
///
/// let shards = Checkpoint::open(dir.path().join("shards"))?;
/// assert_eq!(shards.files().len(), 3);
/// let out = dir.path().join("merged.safetensors");
/// let size = sharded::merge(&shards, &out, &mut |_| {})?;
/// assert_eq!(fs_err::read(&out)?, fs_err::read(dir.path().join("one.safetensors"))?);
/// assert_eq!(size, fs_err::metadata(&out)?.len());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// A read of `src` or a write of `out` that fails.
pub fn merge(src: &Checkpoint, out: &Path, progress: Progress<'_>) -> Result<u64> {
    merge_with(src, out, &WriteOptions::default(), progress)
}

/// [`merge`] with write options: with [`WriteOptions::replace`]`(false)` an
/// output that another writer creates meanwhile is kept, and the merge fails.
pub fn merge_with(
    src: &Checkpoint,
    out: &Path,
    options: &WriteOptions,
    progress: Progress<'_>,
) -> Result<u64> {
    // Writing over one of the inputs would leave the checkpoint invalid
    // (the merged file beside the other shards duplicates every tensor).
    if let Some(input) = src
        .files()
        .iter()
        .find(|f| same_file(Path::new(f.name()), out))
    {
        return Err(Error::InvalidWrite {
            file: out.display().to_string(),
            reason: format!(
                "the output is one of the checkpoint's inputs ({}); write the merged file elsewhere",
                input.name()
            ),
        });
    }
    let specs: Vec<TensorSpec> = src
        .tensors()
        .map(|(_, t)| TensorSpec::new(t.name.clone(), t.dtype, t.shape.clone()))
        .collect();
    let mut writer = StreamingWriter::create_with(out, specs, src.metadata(), options)?;
    let file_len = writer.layout().file_len();
    for (file, info) in src.tensors() {
        copy_tensor(file, info, &mut writer, progress)?;
    }
    writer.finish()?;
    Ok(file_len)
}

/// Whether `a` and `b` name the same existing file (also through links).
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (fs_err::metadata(a), fs_err::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
    }
}

impl Checkpoint {
    /// Writes every tensor into one file at `out`: [`merge`].
    ///
    /// # Errors
    /// A read of the checkpoint or a write of `out` that fails.
    pub fn merge_into(&self, out: &Path, progress: Progress<'_>) -> Result<u64> {
        merge(self, out, progress)
    }

    /// [`Checkpoint::merge_into`] with write options ([`merge_with`]).
    pub fn merge_into_with(
        &self,
        out: &Path,
        options: &WriteOptions,
        progress: Progress<'_>,
    ) -> Result<u64> {
        merge_with(self, out, options, progress)
    }
}

/// One safetensors file of a written checkpoint, as [`describe_files`] sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ShardFile {
    /// File name (without its folder).
    pub file: String,
    /// Tensors in it.
    pub tensors: usize,
    /// Tensor bytes in it (the data buffer).
    pub bytes: u64,
    /// File size: 8 + header + data.
    pub file_bytes: u64,
}

/// Describes the safetensors files among `paths` (as returned by
/// [`write_sharded`]; the index is skipped), in order.
///
/// # Errors
/// A file that cannot be opened or is not valid.
pub fn describe_files(paths: &[PathBuf]) -> Result<Vec<ShardFile>> {
    let mut rows = Vec::new();
    for path in paths {
        if path.extension().is_some_and(|e| e == "json") {
            continue;
        }
        let file = SafeTensorsFile::open(path)?;
        let h = file.header();
        rows.push(ShardFile {
            file: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| file.name().to_owned()),
            tensors: h.len(),
            bytes: h.data_len(),
            file_bytes: h.data_start() + h.data_len(),
        });
    }
    Ok(rows)
}
