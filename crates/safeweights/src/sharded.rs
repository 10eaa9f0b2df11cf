//! Sharded checkpoints: `model-00001-of-00003.safetensors` files and a
//! `model.safetensors.index.json` that maps each tensor to its shard.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result, ShardError};
use crate::header::{Metadata, TensorInfo};
use crate::reader::{OpenOptions, SafeTensorsFile, TensorView};
use crate::writer::{StreamingWriter, TensorSpec};

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
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
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

    fn open_dir(dir: &Path, options: &OpenOptions) -> Result<Self> {
        let shard_err = |source| Error::Shard {
            file: dir.display().to_string(),
            source,
        };
        let mut indexes = Vec::new();
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if name.ends_with(".safetensors.index.json") {
                indexes.push(entry.path());
            } else if name.ends_with(".safetensors") && entry.path().is_file() {
                files.push(entry.path());
            }
        }
        indexes.sort();
        files.sort();
        match indexes.len() {
            0 => {}
            1 => return Self::open_index(&indexes[0], options),
            _ => {
                let names: Vec<String> = indexes
                    .iter()
                    .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .collect();
                return Err(shard_err(ShardError::AmbiguousIndex(names.join(", "))));
            }
        }
        if files.is_empty() {
            return Err(shard_err(ShardError::Empty));
        }
        let opened = files
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
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
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
pub fn write_sharded(
    src: &Checkpoint,
    out_dir: &Path,
    prefix: &str,
    max_shard_size: Option<u64>,
    metadata: Option<&Metadata>,
    progress: Progress<'_>,
) -> Result<Vec<PathBuf>> {
    let infos: Vec<(&SafeTensorsFile, &TensorInfo)> = src.tensors().collect();
    let sizes: Vec<u64> = infos.iter().map(|(_, t)| t.byte_len() as u64).collect();
    let groups = plan_shards(&sizes, max_shard_size.unwrap_or(u64::MAX));
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
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
        written.push(path);
    }
    if count > 1 {
        let mut index = ShardIndex {
            weight_map,
            ..Default::default()
        };
        index
            .metadata
            .insert("total_size".into(), sizes.iter().sum::<u64>().into());
        let path = out_dir.join(format!("{prefix}.safetensors.index.json"));
        let atomic = crate::writer::AtomicFile::create(&path)?;
        std::io::Write::write_all(&mut atomic.file(), index.to_json().as_bytes())
            .map_err(|e| Error::io(&path, e))?;
        atomic.commit()?;
        written.push(path);
    }
    Ok(written)
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
/// assert_eq!(std::fs::read(&out)?, std::fs::read(dir.path().join("one.safetensors"))?);
/// assert_eq!(size, std::fs::metadata(&out)?.len());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// A read of `src` or a write of `out` that fails.
pub fn merge(src: &Checkpoint, out: &Path, progress: Progress<'_>) -> Result<u64> {
    let specs: Vec<TensorSpec> = src
        .tensors()
        .map(|(_, t)| TensorSpec::new(t.name.clone(), t.dtype, t.shape.clone()))
        .collect();
    let mut writer = StreamingWriter::create(out, specs, src.metadata())?;
    let file_len = writer.layout().file_len();
    for (file, info) in src.tensors() {
        copy_tensor(file, info, &mut writer, progress)?;
    }
    writer.finish()?;
    Ok(file_len)
}

impl Checkpoint {
    /// Writes every tensor into one file at `out`: [`merge`].
    ///
    /// # Errors
    /// A read of the checkpoint or a write of `out` that fails.
    pub fn merge_into(&self, out: &Path, progress: Progress<'_>) -> Result<u64> {
        merge(self, out, progress)
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
