//! TensorFlow graphs: a `saved_model.pb` (`SavedModel` → `MetaGraphDef` →
//! `GraphDef`) or a frozen `GraphDef`, parsed field by field over the
//! protobuf wire format (message numbers from tensorflow/core/framework and
//! tensorflow/core/protobuf), never searched as bytes.
//!
//! The nodes of the graph and of every function in its library are judged by
//! op: ops that read or write files, run Python, or save/restore checkpoints
//! to a path fixed inside the graph.

use std::collections::HashMap;

use crate::paths::path_escapes;
use crate::protobuf::{Field, Pb};
use crate::severity::Severity;

/// One node using a dangerous op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpHit {
    pub severity: Severity,
    pub op: String,
    pub node: String,
    /// Extra context (a path), or empty.
    pub detail: String,
    /// Offset of the node in the file.
    pub offset: u64,
}

/// Ops that run Python or write files: critical.
const CRITICAL_OPS: &[&str] = &["PyFunc", "PyFuncStateless", "EagerPyFunc", "WriteFile"];
/// Ops that read files, map files or write outside the checkpoint: high.
const FILE_OPS: &[&str] = &[
    "ReadFile",
    "MatchingFiles",
    "ImmutableConst",
    "WholeFileReader",
    "WholeFileReaderV2",
    "TextLineReader",
    "TextLineReaderV2",
    "FixedLengthRecordReader",
    "FixedLengthRecordReaderV2",
    "TFRecordReader",
    "TFRecordReaderV2",
    "LMDBReader",
    "TFRecordDataset",
    "TFRecordDatasetV2",
    "TextLineDataset",
    "FixedLengthRecordDataset",
    "FixedLengthRecordDatasetV2",
    "CSVDataset",
    "CSVDatasetV2",
    "ExperimentalCSVDataset",
    "SqlDataset",
    "ExperimentalSqlDataset",
    "LMDBDataset",
    "ExperimentalLMDBDataset",
    "DatasetToTFRecord",
    "ExperimentalDatasetToTFRecord",
    "SaveDataset",
    "SaveDatasetV2",
    "LoadDataset",
    "CreateSummaryFileWriter",
    "CreateSummaryDbWriter",
    "DebugIdentityV2",
    "DebugIdentityV3",
];
/// Checkpoint ops: judged by the path they are given.
const SAVE_OPS: &[&str] = &[
    "Save",
    "SaveV2",
    "SaveSlices",
    "Restore",
    "RestoreV2",
    "RestoreSlice",
    "MergeV2Checkpoints",
];

struct Node<'a> {
    name: String,
    op: String,
    inputs: Vec<String>,
    /// String values of a `Const` (its `value` attr's `string_val`).
    strings: Vec<String>,
    /// String attrs (`output_stream` of `PrintV2`, `debug_urls`...).
    attrs: Vec<(String, &'a [u8])>,
    offset: u64,
}

fn text(b: &[u8]) -> Option<String> {
    std::str::from_utf8(b).ok().map(str::to_string)
}

fn is_op_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'>' || c == b'.')
}

/// Parses a `NodeDef`; `None` when it is not one.
fn node(d: &[u8], base: u64) -> Option<Node<'_>> {
    let mut n = Node {
        name: String::new(),
        op: String::new(),
        inputs: Vec::new(),
        strings: Vec::new(),
        attrs: Vec::new(),
        offset: base,
    };
    let mut pb = Pb::new(d);
    while let Some(f) = pb.next() {
        match f.ok()? {
            (1, Field::Bytes(b, _)) => n.name = text(b)?,
            (2, Field::Bytes(b, _)) => n.op = text(b)?,
            (3, Field::Bytes(b, _)) => n.inputs.push(text(b)?),
            (4 | 6 | 7, Field::Bytes(..)) => {}
            (5, Field::Bytes(b, _)) => attr(b, &mut n),
            _ => return None,
        }
    }
    is_op_name(&n.op).then_some(n)
}

/// One `attr` map entry: key (1) → `AttrValue` (2).
fn attr<'a>(d: &'a [u8], n: &mut Node<'a>) {
    let mut pb = Pb::new(d);
    let (mut key, mut val) = (String::new(), None);
    while let Some(Ok((num, f))) = pb.next() {
        match (num, f) {
            (1, Field::Bytes(b, _)) => key = String::from_utf8_lossy(b).into_owned(),
            (2, Field::Bytes(b, _)) => val = Some(b),
            _ => {}
        }
    }
    let Some(v) = val else { return };
    let mut pb = Pb::new(v);
    while let Some(Ok((num, f))) = pb.next() {
        match (num, f) {
            (2, Field::Bytes(s, _)) => n.attrs.push((key.clone(), s)),
            (1, Field::Bytes(list, _)) => {
                // ListValue.s (2)
                let mut l = Pb::new(list);
                while let Some(Ok((2, Field::Bytes(s, _)))) = l.next() {
                    n.attrs.push((key.clone(), s));
                }
            }
            (8, Field::Bytes(t, _)) if key == "value" => {
                // TensorProto.string_val (8)
                let mut tp = Pb::new(t);
                while let Some(Ok((num, f))) = tp.next() {
                    if let (8, Field::Bytes(s, _)) = (num, f) {
                        n.strings.push(String::from_utf8_lossy(s).into_owned());
                    }
                }
            }
            _ => {}
        }
    }
}

/// The nodes of a `GraphDef` (field 1) and of its function library (field 2:
/// `FunctionDef.node_def`, field 3); `None` when it is not a graph.
fn graph<'a>(d: &'a [u8], base: u64, out: &mut Vec<Node<'a>>) -> Option<()> {
    let mut pb = Pb::new(d);
    while let Some(f) = pb.next() {
        match f.ok()? {
            (1, Field::Bytes(b, at)) => out.push(node(b, base + at as u64)?),
            (2, Field::Bytes(lib, at)) => {
                let lib_base = base + at as u64;
                let mut l = Pb::new(lib);
                while let Some(f) = l.next() {
                    if let (1, Field::Bytes(func, fat)) = f.ok()? {
                        let fb = lib_base + fat as u64;
                        let mut fp = Pb::new(func);
                        while let Some(f) = fp.next() {
                            if let (3, Field::Bytes(b, nat)) = f.ok()? {
                                out.push(node(b, fb + nat as u64)?);
                            }
                        }
                    }
                }
            }
            (3, Field::Varint(_)) | (4 | 5, Field::Bytes(..)) => {}
            _ => return None,
        }
    }
    Some(())
}

/// The nodes of `data` read as a `SavedModel` or, failing that, as a frozen
/// `GraphDef`; `None` when it is neither.
fn nodes(data: &[u8]) -> Option<Vec<Node<'_>>> {
    let mut out = Vec::new();
    match data.first()? {
        0x08 | 0x12 => {
            let mut pb = Pb::new(data);
            let mut metas = 0usize;
            while let Some(f) = pb.next() {
                match f.ok()? {
                    (1, Field::Varint(_)) => {}
                    (2, Field::Bytes(meta, at)) => {
                        metas += 1;
                        let mut mp = Pb::new(meta);
                        while let Some(f) = mp.next() {
                            match f.ok()? {
                                (2, Field::Bytes(g, gat)) => {
                                    graph(g, (at + gat) as u64, &mut out)?;
                                }
                                (1 | 3..=7, Field::Bytes(..)) => {}
                                _ => return None,
                            }
                        }
                    }
                    _ => return None,
                }
            }
            // A graph with no node at all is no evidence of a TensorFlow file.
            (metas > 0 && !out.is_empty()).then_some(out)
        }
        0x0a => {
            graph(data, 0, &mut out)?;
            (!out.is_empty()).then_some(out)
        }
        _ => None,
    }
}

/// Whether `data` is a TensorFlow SavedModel or frozen graph: the whole of it
/// parses as one, with at least one node whose op is a name.
pub(crate) fn looks_like_graph(data: &[u8]) -> bool {
    nodes(data).is_some()
}

/// The nodes of the graph that use dangerous ops.
pub(crate) fn judge(data: &[u8]) -> Vec<OpHit> {
    let Some(nodes) = nodes(data) else {
        return Vec::new();
    };
    let consts: HashMap<&str, &Node<'_>> = nodes
        .iter()
        .filter(|n| n.op == "Const")
        .map(|n| (n.name.as_str(), n))
        .collect();
    let mut hits = Vec::new();
    for n in &nodes {
        let op = n.op.as_str();
        let hit = |severity, detail: String| OpHit {
            severity,
            op: n.op.clone(),
            node: n.name.clone(),
            detail,
            offset: n.offset,
        };
        if CRITICAL_OPS.contains(&op) {
            hits.push(hit(Severity::Critical, String::new()));
        } else if FILE_OPS.contains(&op) {
            hits.push(hit(Severity::High, String::new()));
        } else if SAVE_OPS.contains(&op) {
            // The file name input, when it is a constant baked into the graph.
            let Some(inp) = n.inputs.first() else {
                continue;
            };
            let name = inp.trim_start_matches('^');
            let name = name.split(':').next().unwrap_or(name);
            if let Some(c) = consts.get(name) {
                if let Some(p) = c
                    .strings
                    .iter()
                    .find(|p| path_escapes(p) || p.contains("://"))
                {
                    hits.push(hit(Severity::High, format!("path {p:?}")));
                }
            }
        } else if op == "PrintV2" || op.starts_with("Debug") {
            for (k, v) in &n.attrs {
                let v = String::from_utf8_lossy(v);
                if (k == "output_stream" || k == "debug_urls" || k == "file_path")
                    && (v.starts_with("file://") || path_escapes(&v))
                {
                    hits.push(hit(Severity::High, format!("{k} {v:?}")));
                }
            }
        }
    }
    hits
}
