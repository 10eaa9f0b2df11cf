//! Keras model configs (`config.json` of a `.keras` zip, the HDF5
//! `model_config` attribute), parsed as JSON and judged object by object:
//! `TFOpLambda` layers bound to file or process ops, `TFSMLayer` (loads
//! another SavedModel), and objects Keras resolves by `module`,
//! `class_name` or `registered_name` outside Keras itself (an activation
//! named `os.system`, a `subprocess.Popen` layer, `keras.utils.get_file`).
//! `Lambda` layers are found by [`crate::formats::keras_lambdas`].

use serde_json::Value;

use crate::globals::{judge as judge_global, Verdict};
use crate::rules::RuleId;
use crate::severity::Severity;

/// One finding in a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KerasHit {
    pub rule: RuleId,
    pub severity: Severity,
    pub what: String,
    pub why: &'static str,
}

/// `TFOpLambda` functions (`tf.io.read_file` is serialized as `io.read_file`)
/// that touch files, processes or Python.
const TF_FILE_FUNCTIONS: &[&str] = &[
    "read_file",
    "write_file",
    "matching_files",
    "gfile",
    "py_function",
    "py_func",
    "numpy_function",
    "eager_py_func",
    "load_library",
    "load_op_library",
    "ReadFile",
    "WriteFile",
    "MatchingFiles",
    "PyFunc",
    "EagerPyFunc",
    "PyFuncStateless",
    "ImmutableConst",
    "save",
    "restore",
    "TFRecordDataset",
    "TextLineDataset",
    "printv2",
];

/// Module prefixes whose objects Keras itself, or its official model
/// libraries (KerasHub presets), provide.
const KERAS_MODULES: &[&str] = &[
    "keras",
    "tf_keras",
    "tensorflow",
    "builtins",
    "keras_hub",
    "keras_nlp",
    "keras_cv",
    "keras_rs",
];

/// Keras helpers that fetch or write files.
const KERAS_FILE_HELPERS: &[&str] = &[
    "keras.utils.get_file",
    "keras.src.utils.file_utils.get_file",
    "keras.utils.data_utils.get_file",
    "tf_keras.utils.get_file",
    "tensorflow.keras.utils.get_file",
    "keras.models.load_model",
    "keras.saving.load_model",
    "keras.src.saving.saving_api.load_model",
    "keras.layers.TFSMLayer",
    // Loads a SavedModel from a path or URL, like TFSMLayer.
    "tensorflow_hub.KerasLayer",
    "tensorflow_hub.keras_layer.KerasLayer",
];

/// Judges a dotted Python name (`os.system`) as the pickle table does.
fn python_primitive(dotted: &str) -> Option<String> {
    let (m, n) = dotted.split_once('.')?;
    if !dotted
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
    {
        return None;
    }
    match judge_global(m, n) {
        Verdict::Critical { category, resolved } => Some(format!("{resolved} ({category})")),
        _ => None,
    }
}

fn tf_function_is_dangerous(f: &str) -> bool {
    let last = f.rsplit('.').next().unwrap_or(f);
    TF_FILE_FUNCTIONS
        .iter()
        .any(|d| last == *d || f.split('.').any(|c| c == *d))
}

/// Every finding in the JSON `config`.
pub(crate) fn judge(config: &Value) -> Vec<KerasHit> {
    let mut hits = Vec::new();
    walk(config, &mut hits, 0);
    hits
}

fn walk(v: &Value, hits: &mut Vec<KerasHit>, depth: usize) {
    if depth > 256 {
        return;
    }
    match v {
        Value::Object(o) => {
            object(o, hits);
            for (k, x) in o {
                if let Value::String(s) = x {
                    // Strings Keras resolves to callables: activations, initializers...
                    if k != "name" {
                        if let Some(p) = python_primitive(s) {
                            hits.push(KerasHit {
                                rule: RuleId::KerasCustomObject,
                                severity: Severity::Critical,
                                what: format!("{k} is {s:?}, a Python primitive: {p}"),
                                why: "Keras resolves such names to callables and calls them when the model is built or run",
                            });
                        }
                    }
                }
                walk(x, hits, depth + 1);
            }
        }
        Value::Array(a) => {
            for x in a {
                walk(x, hits, depth + 1);
            }
        }
        _ => {}
    }
}

fn object(o: &serde_json::Map<String, Value>, hits: &mut Vec<KerasHit>) {
    let s = |k: &str| o.get(k).and_then(Value::as_str);
    let class = s("class_name").unwrap_or_default();
    let module = s("module");
    let registered = s("registered_name");
    let config = o.get("config");
    if class == "TFOpLambda" || class == "SlicingOpLambda" {
        let f = config
            .and_then(|c| c.get("function"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if tf_function_is_dangerous(f) {
            hits.push(KerasHit {
                rule: RuleId::KerasTfOpLambda,
                severity: Severity::High,
                what: format!("{class} layer bound to tf.{f}"),
                why: "the layer runs this TensorFlow op when the model is called: it reads or writes files or runs Python",
            });
        }
    }
    if class == "TFSMLayer" {
        let fp = config
            .and_then(|c| c.get("filepath"))
            .and_then(Value::as_str)
            .unwrap_or("?");
        hits.push(KerasHit {
            rule: RuleId::KerasTfsmLayer,
            severity: Severity::High,
            what: format!("TFSMLayer loads the SavedModel at {fp:?}"),
            why: "loading the model loads another SavedModel from a path (CVE-2026-1462); its graph is not in this file and can run anything TensorFlow can",
        });
    }
    // Objects resolved by module + class_name / registered_name.
    let mut names = Vec::new();
    if let Some(m) = module {
        if !class.is_empty() {
            names.push(format!("{m}.{class}"));
        }
        if class == "function" {
            if let Some(f) = config.and_then(Value::as_str) {
                names.push(format!("{m}.{f}"));
            }
        }
    }
    for n in [Some(class), registered].into_iter().flatten() {
        if n.contains('.') {
            names.push(n.to_string());
        }
        if let Some((pkg, name)) = n.split_once('>') {
            names.push(format!("{pkg}.{name}"));
        }
    }
    for n in &names {
        if let Some(p) = python_primitive(n) {
            hits.push(KerasHit {
                rule: RuleId::KerasCustomObject,
                severity: Severity::Critical,
                what: format!("object {n:?} resolves to a Python primitive: {p}"),
                why: "Keras imports and calls the named object when the model is loaded",
            });
            return;
        }
        if KERAS_FILE_HELPERS.contains(&n.as_str()) {
            hits.push(KerasHit {
                rule: RuleId::KerasCustomObject,
                severity: Severity::High,
                what: format!("object {n:?} fetches or loads files"),
                why: "deserializing the config calls a Keras file helper (download, load another model)",
            });
            return;
        }
    }
    if let Some(m) = module {
        let root = m.split('.').next().unwrap_or(m);
        if !KERAS_MODULES.contains(&root) {
            hits.push(KerasHit {
                rule: RuleId::KerasCustomObject,
                severity: Severity::Medium,
                what: format!(
                    "custom object {class:?} from module {m:?}{}",
                    registered
                        .map(|r| format!(" (registered as {r:?})"))
                        .unwrap_or_default()
                ),
                why: "Keras imports this module to load the model: its code runs, and it is not part of the file",
            });
        }
    }
}

/// The JSON objects embedded in `data` that look like Keras model configs
/// (HDF5 attributes hold them as plain text), parsed.
pub(crate) fn embedded_configs(data: &[u8]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut i = 0usize;
    while let Some(p) = memchr::memmem::find(&data[i..], b"{\"class_name\"") {
        let st = i + p;
        let mut it = serde_json::Deserializer::from_slice(&data[st..]).into_iter::<Value>();
        match it.next() {
            Some(Ok(v)) => {
                i = st + it.byte_offset().max(1);
                out.push(v);
            }
            _ => i = st + 1,
        }
        if out.len() > 64 {
            break;
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn judged() {
        let ok = json!({"module": "keras.layers", "class_name": "Dense", "config": {"activation": "relu"}, "registered_name": null});
        assert!(judge(&ok).is_empty());
        let ok = json!({"class_name": "TFOpLambda", "config": {"function": "math.add"}});
        assert!(judge(&ok).is_empty());
        let bad = json!({"class_name": "TFOpLambda", "config": {"function": "io.write_file"}});
        assert_eq!(judge(&bad)[0].rule, RuleId::KerasTfOpLambda);
        let bad = json!({"class_name": "Dense", "config": {"activation": "os.system"}});
        assert_eq!(judge(&bad)[0].severity, Severity::Critical);
        let bad = json!({"module": "subprocess", "class_name": "Popen", "config": {}});
        assert_eq!(judge(&bad)[0].severity, Severity::Critical);
        let bad = json!({"module": "keras.utils", "class_name": "get_file", "config": {}});
        assert_eq!(judge(&bad)[0].severity, Severity::High);
        let bad = json!({"module": "builtins", "class_name": "function", "config": "exec"});
        assert_eq!(judge(&bad)[0].severity, Severity::Critical);
        let hub = json!({"module": "keras_hub.src.models.gemma.gemma_backbone", "class_name": "GemmaBackbone", "registered_name": "keras_hub>GemmaBackbone", "config": {}});
        assert!(judge(&hub).is_empty());
        let tfhub = json!({"module": "tensorflow_hub.keras_layer", "class_name": "KerasLayer", "config": {"handle": "https://x"}});
        assert_eq!(judge(&tfhub)[0].severity, Severity::High);
        let custom = json!({"module": "my_pkg.layers", "class_name": "Block", "registered_name": "my_pkg>Block"});
        assert_eq!(judge(&custom)[0].severity, Severity::Medium);
    }
}
