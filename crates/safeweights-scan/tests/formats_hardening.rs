//! Regression tests of issue 21 ("Hardening: the scanner and path safety"),
//! the format and container side of "Scanner gaps": chat templates, files
//! whose name claims a format, Keras/TensorFlow carriers, polyglots and
//! containers that hide their start. Every file is built byte by byte here.
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.

mod common;
use common::*;

use safeweights_scan::{exit_code, scan_bytes, scan_paths, Format, Report, ScanOptions, Severity};

fn dump(r: &Report) -> String {
    safeweights_scan::render_human(r, &Default::default())
}

fn scan(name: &str, data: &[u8]) -> Report {
    scan_bytes(name, data, &ScanOptions::new())
}

/// The findings of `rule`, at or above `sev`.
fn has(r: &Report, rule: &str, sev: Severity) -> bool {
    r.findings
        .iter()
        .any(|f| f.rule == rule && f.severity >= sev)
}

fn assert_has(r: &Report, rule: &str, sev: Severity) {
    assert!(has(r, rule, sev), "expected {rule} ({sev}):\n{}", dump(r));
}

fn assert_clean(r: &Report) {
    assert!(
        r.findings.iter().all(|f| f.severity <= Severity::Info),
        "expected no finding:\n{}",
        dump(r)
    );
}

// ---------- chat templates ----------

const LLAMA3: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

const LLAMA31_TOOLS: &str = r#"{{- bos_token }}
{%- if custom_tools is defined %}{%- set tools = custom_tools %}{%- endif %}
{%- if not date_string is defined %}{%- set date_string = strftime_now("%d %b %Y") %}{%- endif %}
{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}{%- set messages = messages[1:] %}{%- else %}{%- set system_message = "" %}{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if builtin_tools is defined or tools is not none %}{{- "Environment: ipython\n" }}{%- endif %}
{%- if builtin_tools is defined %}{{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\n\n"}}{%- endif %}
{{- "Today Date: " + date_string + "\n\n" }}
{%- for t in tools %}{{- t | tojson(indent=4) }}{{- "\n\n" }}{%- endfor %}
{%- for message in messages %}
    {%- if 'tool_calls' in message %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|python_tag|>' + tool_call.name + '.call(' }}
        {%- for arg_name, arg_val in tool_call.arguments | items %}{{- arg_name + '="' + arg_val + '"' }}{%- if not loop.last %}{{- ", " }}{%- endif %}{%- endfor %}
        {{- '{"name": "' + tool_call.name + '", "parameters": ' }}{{- tool_call.arguments | tojson }}{{- "}" }}
    {%- endif %}
{%- endfor %}"#;

const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

const MISTRAL: &str = "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}";

const QWEN_NS: &str = "{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}{%- for message in messages[::-1] %}{%- set index = (messages|length - 1) - loop.index0 %}{%- if ns.multi_step_tool and message.role == \"user\" and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}{%- set ns.multi_step_tool = false %}{%- set ns.last_query_index = index %}{%- endif %}{%- endfor %}";

const EVIL_TEMPLATES: &[(&str, Severity)] = &[
    (
        "{% for m in messages %}{{ m['content'] }}{% endfor %}{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        Severity::Critical,
    ),
    (
        "{{ ''.__class__.__mro__[1].__subclasses__()[140].__init__.__globals__['sys'] }}",
        Severity::Critical,
    ),
    ("{{ self._TemplateReference__context }}", Severity::High),
    (
        "{% set a = ''|attr('__cla' ~ 'ss__') %}{{ a }}",
        Severity::High,
    ),
    ("{{ lipsum.__globals__['os'] }}", Severity::High),
    (
        "{{ joiner.__init__.__globals__.__builtins__.__import__('os').system('id') }}",
        Severity::Critical,
    ),
    ("{{ namespace.__init__.__globals__ }}", Severity::High),
];

fn gguf_string(v: &mut Vec<u8>, s: &str) {
    v.extend_from_slice(&(s.len() as u64).to_le_bytes());
    v.extend_from_slice(s.as_bytes());
}

/// A GGUF v3 file with string metadata, a token array and one f32 tensor.
fn gguf(kv: &[(&str, &str)]) -> Vec<u8> {
    let mut d = b"GGUF".to_vec();
    d.extend_from_slice(&3u32.to_le_bytes());
    d.extend_from_slice(&1u64.to_le_bytes()); // tensors
    d.extend_from_slice(&(kv.len() as u64 + 2).to_le_bytes());
    gguf_string(&mut d, "general.alignment");
    d.extend_from_slice(&4u32.to_le_bytes()); // u32
    d.extend_from_slice(&32u32.to_le_bytes());
    gguf_string(&mut d, "tokenizer.ggml.tokens");
    d.extend_from_slice(&9u32.to_le_bytes()); // array
    d.extend_from_slice(&8u32.to_le_bytes()); // of strings
    d.extend_from_slice(&3u64.to_le_bytes());
    for t in ["<s>", "</s>", "hello"] {
        gguf_string(&mut d, t);
    }
    for (k, v) in kv {
        gguf_string(&mut d, k);
        d.extend_from_slice(&8u32.to_le_bytes());
        gguf_string(&mut d, v);
    }
    // tensor info: name, n_dims, dims, type (f32), offset
    gguf_string(&mut d, "w");
    d.extend_from_slice(&1u32.to_le_bytes());
    d.extend_from_slice(&4u64.to_le_bytes());
    d.extend_from_slice(&0u32.to_le_bytes());
    d.extend_from_slice(&0u64.to_le_bytes());
    while d.len() % 32 != 0 {
        d.push(0);
    }
    d.extend_from_slice(&[0u8; 16]);
    d
}

#[test]
fn gguf_chat_template_reaching_python_internals_is_flagged() {
    for (t, sev) in EVIL_TEMPLATES {
        let f = gguf(&[
            ("general.architecture", "llama"),
            ("tokenizer.chat_template", t),
        ]);
        let r = scan("evil.gguf", &f);
        assert_eq!(r.files[0].format, Format::Gguf);
        assert_has(&r, "template.python-internals", *sev);
        let hit = r
            .findings
            .iter()
            .find(|f| f.rule == "template.python-internals")
            .unwrap();
        assert!(
            hit.what.contains("__") || hit.what.contains("self"),
            "{}",
            hit.what
        );
        assert_eq!(exit_code(&r, Severity::Medium), 1);
    }
    // Any other template-valued key is judged too.
    let f = gguf(&[("tokenizer.chat_template.tool_use", EVIL_TEMPLATES[0].0)]);
    assert_has(
        &scan("evil.gguf", &f),
        "template.python-internals",
        Severity::Critical,
    );
    // The finding points into the template.
    let f = gguf(&[("tokenizer.chat_template", EVIL_TEMPLATES[1].0)]);
    let r = scan("evil.gguf", &f);
    let off = r.findings[0].offset.unwrap() as usize;
    assert!(f[off..].starts_with(b"{{ ''.__class__"), "{off}");
}

#[test]
fn ordinary_chat_templates_stay_clean() {
    for t in [LLAMA3, LLAMA31_TOOLS, CHATML, MISTRAL, QWEN_NS] {
        let r = scan("model.gguf", &gguf(&[("tokenizer.chat_template", t)]));
        assert_eq!(r.files[0].format, Format::Gguf);
        assert_clean(&r);
        let cfg = serde_json::json!({"bos_token": "<s>", "chat_template": t}).to_string();
        assert_clean(&scan("tokenizer_config.json", cfg.as_bytes()));
        assert_clean(&scan("chat_template.jinja", t.as_bytes()));
    }
}

#[test]
fn tokenizer_config_and_jinja_templates_are_judged() {
    let dir = tempfile::tempdir().unwrap();
    let evil = EVIL_TEMPLATES[0].0;
    let cfg = serde_json::json!({"bos_token": "<s>", "chat_template": evil}).to_string();
    std::fs::write(dir.path().join("tokenizer_config.json"), cfg).unwrap();
    let named = serde_json::json!({"chat_template": [
        {"name": "default", "template": CHATML},
        {"name": "tool_use", "template": EVIL_TEMPLATES[2].0},
    ]})
    .to_string();
    std::fs::write(dir.path().join("processor_config.json"), named).unwrap();
    std::fs::write(dir.path().join("chat_template.jinja"), EVIL_TEMPLATES[1].0).unwrap();
    // Large configs inside an archive are read by their name.
    let big = serde_json::json!({"pad": "x".repeat(10_000), "chat_template": evil}).to_string();
    let z = zip(&[("repo/tokenizer_config.json", big.as_bytes())]);
    assert_has(
        &scan("repo.zip", &z),
        "template.python-internals",
        Severity::Critical,
    );
    let r = scan_paths(&[dir.path()], &ScanOptions::new());
    let hits: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.rule == "template.python-internals")
        .collect();
    assert_eq!(hits.len(), 3, "{}", dump(&r));
    assert!(hits
        .iter()
        .any(|f| f.file.ends_with("chat_template.jinja") && f.severity == Severity::Critical));
    assert!(hits
        .iter()
        .any(|f| f.file.ends_with("tokenizer_config.json") && f.severity == Severity::Critical));
    assert!(hits
        .iter()
        .any(|f| f.file.ends_with("processor_config.json") && f.what.contains("tool_use")));
}

#[test]
fn broken_gguf_metadata_is_reported() {
    let mut f = gguf(&[("tokenizer.chat_template", CHATML)]);
    // The file now ends inside the token array.
    f.truncate(60);
    assert_has(&scan("cut.gguf", &f), "gguf.malformed", Severity::Medium);
}

// ---------- names that claim a format ----------

#[test]
fn file_named_as_a_model_format_that_is_not_is_reported() {
    let junk = b"this is not a model at all, just some text\n".to_vec();
    for (name, what) in [
        ("model.safetensors", "safetensors"),
        ("model.gguf", "GGUF"),
        ("model.onnx", "ONNX"),
        ("model.keras", "Keras"),
    ] {
        let r = scan(name, &junk);
        assert_has(&r, "format.mismatch", Severity::Medium);
        let f = r
            .findings
            .iter()
            .find(|f| f.rule == "format.mismatch")
            .unwrap();
        assert!(
            f.what.contains(&format!("claims to be {what} but is not")),
            "{}",
            f.what
        );
        assert_eq!(exit_code(&r, Severity::Medium), 1, "{name}");
    }
    // Empty files too.
    assert_has(
        &scan("empty.safetensors", b""),
        "format.mismatch",
        Severity::Medium,
    );
    // The real thing is not reported.
    let st = safetensors_raw(
        r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
        &[0; 4],
    );
    assert_clean(&scan("model.safetensors", &st));
    assert_clean(&scan("model.gguf", &gguf(&[])));
    assert_clean(&scan("model.onnx", &onnx_external("w.bin")));
}

#[test]
fn safetensors_length_prefix_that_reads_as_pickle_is_judged_by_both_readers() {
    // Length 0x2e4e ("N." then zeros): a pickle reader reads `None` and stops.
    let n = 0x2e4e;
    let mut header = r#"{"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#.to_string();
    while header.len() < n {
        header.push(' ');
    }
    let f = safetensors_raw(&header, &[1, 2, 3, 4]);
    assert_eq!(&f[..2], b"N.");
    let r = scan("both.safetensors", &f);
    assert_eq!(r.files[0].format, Format::Safetensors);
    assert!(
        r.files
            .iter()
            .any(|o| o.member.as_deref() == Some("<as-pickle>") && o.format == Format::Pickle),
        "{}",
        dump(&r)
    );
    assert_has(&r, "format.ambiguous", Severity::Low);
    // A 640-byte header starts `\x80\x02` (PROTO 2), then zeros: no pickle.
    let mut header = r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#.to_string();
    while header.len() < 640 {
        header.push(' ');
    }
    let f = safetensors_raw(&header, &[0; 4]);
    assert_eq!(&f[..2], b"\x80\x02");
    let r = scan("ok.safetensors", &f);
    assert_eq!(r.files.len(), 1, "{}", dump(&r));
    assert!(r.findings.is_empty(), "{}", dump(&r));
    // An ordinary header length does not read as a pickle.
    let st = safetensors_raw(
        r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
        &[0; 4],
    );
    let r = scan("ok.safetensors", &st);
    assert_eq!(r.files.len(), 1, "{}", dump(&r));
}

// ---------- Keras and TensorFlow ----------

fn keras_zip(config: &serde_json::Value) -> Vec<u8> {
    zip(&[
        ("metadata.json", br#"{"keras_version": "3.6.0"}"#),
        ("config.json", config.to_string().as_bytes()),
        ("model.weights.h5", b"\x89HDF\r\n\x1a\n"),
    ])
}

fn functional(layers: Vec<serde_json::Value>) -> serde_json::Value {
    serde_json::json!({
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "config": {"name": "m", "layers": layers},
        "registered_name": "Functional",
    })
}

fn dense(activation: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "module": "keras.layers", "class_name": "Dense", "registered_name": null,
        "config": {"name": "d", "units": 4, "activation": activation},
    })
}

#[test]
fn keras_carriers_beyond_lambda_are_flagged() {
    use serde_json::json;
    let cases: Vec<(serde_json::Value, &str, Severity)> = vec![
        (
            json!({"class_name": "TFOpLambda", "config": {"name": "r", "function": "io.read_file"}}),
            "keras.tfoplambda",
            Severity::High,
        ),
        (
            json!({"class_name": "TFOpLambda", "config": {"name": "w", "function": "io.write_file"}}),
            "keras.tfoplambda",
            Severity::High,
        ),
        (
            json!({"module": "keras.layers", "class_name": "TFSMLayer", "config": {"filepath": "/tmp/other_model", "call_endpoint": "serve"}}),
            "keras.tfsm-layer",
            Severity::High,
        ),
        (
            dense(json!("os.system")),
            "keras.custom-object",
            Severity::Critical,
        ),
        (
            dense(
                json!({"module": "builtins", "class_name": "function", "config": "exec", "registered_name": "function"}),
            ),
            "keras.custom-object",
            Severity::Critical,
        ),
        (
            json!({"module": "subprocess", "class_name": "Popen", "config": {"args": ["id"]}, "registered_name": null}),
            "keras.custom-object",
            Severity::Critical,
        ),
        (
            json!({"module": "keras.utils", "class_name": "get_file", "config": {"origin": "http://x/y"}, "registered_name": null}),
            "keras.custom-object",
            Severity::High,
        ),
        (
            json!({"module": "evil_pkg.layers", "class_name": "Block", "config": {}, "registered_name": "evil_pkg>Block"}),
            "keras.custom-object",
            Severity::Medium,
        ),
    ];
    for (layer, rule, sev) in cases {
        let cfg = functional(vec![dense(json!("relu")), layer.clone()]);
        let r = scan("model.keras", &keras_zip(&cfg));
        assert_eq!(r.files[0].format, Format::Keras);
        assert_has(&r, rule, sev);
        // The same config inside a legacy HDF5 file (attribute text).
        let mut h5 = b"\x89HDF\r\n\x1a\n".to_vec();
        h5.extend_from_slice(&[0u8; 200]);
        h5.extend_from_slice(cfg.to_string().as_bytes());
        h5.extend_from_slice(&[0u8; 64]);
        let r = scan("model.h5", &h5);
        assert_eq!(r.files[0].format, Format::Hdf5);
        assert_has(&r, rule, sev);
    }
    // An ordinary model is clean.
    let cfg = functional(vec![
        dense(json!("relu")),
        json!({"class_name": "TFOpLambda", "config": {"name": "add", "function": "math.add"}}),
    ]);
    let r = scan("model.keras", &keras_zip(&cfg));
    assert_clean(&r);
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn pb(out: &mut Vec<u8>, field: u64, data: &[u8]) {
    varint(out, (field << 3) | 2);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// NodeDef { name, op, input..., attr { key: "value", value: AttrValue { tensor { string_val } } } }
fn node_def(name: &str, op: &str, inputs: &[&str], string_val: Option<&str>) -> Vec<u8> {
    let mut n = Vec::new();
    pb(&mut n, 1, name.as_bytes());
    pb(&mut n, 2, op.as_bytes());
    for i in inputs {
        pb(&mut n, 3, i.as_bytes());
    }
    if let Some(s) = string_val {
        let mut tensor = vec![0x08, 0x07]; // dtype: DT_STRING
        pb(&mut tensor, 8, s.as_bytes());
        let mut av = Vec::new();
        pb(&mut av, 8, &tensor);
        let mut entry = Vec::new();
        pb(&mut entry, 1, b"value");
        pb(&mut entry, 2, &av);
        pb(&mut n, 5, &entry);
    }
    n
}

/// SavedModel { schema_version: 1, meta_graphs { graph_def { node..., library { function { signature, node_def... } } } } }
fn saved_model(nodes: &[Vec<u8>], function_nodes: &[Vec<u8>]) -> Vec<u8> {
    let mut graph = Vec::new();
    for n in nodes {
        pb(&mut graph, 1, n);
    }
    if !function_nodes.is_empty() {
        let mut sig = Vec::new();
        pb(&mut sig, 1, b"__inference_call_42");
        let mut func = Vec::new();
        pb(&mut func, 1, &sig);
        for n in function_nodes {
            pb(&mut func, 3, n);
        }
        let mut lib = Vec::new();
        pb(&mut lib, 1, &func);
        pb(&mut graph, 2, &lib);
    }
    let mut versions = Vec::new();
    varint(&mut versions, 8); // producer: field 1 varint
    varint(&mut versions, 1338);
    pb(&mut graph, 4, &versions);
    let mut meta = Vec::new();
    let mut info = Vec::new();
    pb(&mut info, 4, b"serve"); // tags
    pb(&mut meta, 1, &info);
    pb(&mut meta, 2, &graph);
    let mut sm = vec![0x08, 0x01];
    pb(&mut sm, 2, &meta);
    sm
}

#[test]
fn saved_model_graph_with_file_and_python_ops_is_flagged() {
    let benign = saved_model(
        &[
            node_def("x", "Placeholder", &[], None),
            node_def("w", "VarHandleOp", &[], None),
            node_def("y", "MatMul", &["x", "w"], None),
            node_def("saver_filename", "Placeholder", &[], None),
            node_def(
                "save",
                "SaveV2",
                &["saver_filename", "names", "slices"],
                None,
            ),
            node_def(
                "restore",
                "RestoreV2",
                &["saver_filename:0", "names", "slices"],
                None,
            ),
        ],
        &[node_def("relu", "Relu", &["x"], None)],
    );
    let r = scan("saved_model.pb", &benign);
    assert_eq!(r.files[0].format.as_str(), "saved-model", "{}", dump(&r));
    assert_clean(&r);

    for (nodes, fnodes, op, sev) in [
        (
            vec![
                node_def("p", "Const", &[], Some("/etc/passwd")),
                node_def("leak", "ReadFile", &["p"], None),
            ],
            vec![],
            "ReadFile",
            Severity::High,
        ),
        (
            vec![node_def("x", "Placeholder", &[], None)],
            vec![node_def("drop", "WriteFile", &["a", "b"], None)],
            "WriteFile",
            Severity::Critical,
        ),
        (
            vec![node_def("glob", "MatchingFiles", &["pat"], None)],
            vec![],
            "MatchingFiles",
            Severity::High,
        ),
        (
            vec![],
            vec![node_def("py", "EagerPyFunc", &["x"], None)],
            "EagerPyFunc",
            Severity::Critical,
        ),
        (
            vec![node_def("py", "PyFunc", &["x"], None)],
            vec![],
            "PyFunc",
            Severity::Critical,
        ),
        (
            vec![node_def("m", "ImmutableConst", &[], None)],
            vec![],
            "ImmutableConst",
            Severity::High,
        ),
        (
            vec![
                node_def("f", "Const", &[], Some("../../../home/user/.bashrc")),
                node_def("save", "SaveV2", &["f", "names", "slices", "t"], None),
            ],
            vec![],
            "SaveV2",
            Severity::High,
        ),
    ] {
        let f = saved_model(&nodes, &fnodes);
        let r = scan("saved_model.pb", &f);
        assert_eq!(r.files[0].format.as_str(), "saved-model", "{}", dump(&r));
        assert_has(&r, "savedmodel.op", sev);
        assert!(
            r.findings.iter().any(|x| x.what.contains(op)),
            "{op}: {}",
            dump(&r)
        );
    }
    // Keras layer configs of a SavedModel folder: in `keras_metadata.pb`
    // (protobuf strings holding JSON) and in the object graph of saved_model.pb.
    let layer = serde_json::json!({"class_name": "TFOpLambda", "config": {"name": "r", "function": "io.read_file"}});
    let mut meta = Vec::new();
    let mut obj = Vec::new();
    pb(&mut obj, 5, layer.to_string().as_bytes());
    pb(&mut meta, 1, &obj);
    assert_has(
        &scan("keras_metadata.pb", &meta),
        "keras.tfoplambda",
        Severity::High,
    );
    let mut sm = saved_model(&[node_def("x", "Placeholder", &[], None)], &[]);
    let mut meta_graph = Vec::new();
    pb(&mut meta_graph, 7, &obj);
    pb(&mut sm, 2, &meta_graph);
    let r = scan("saved_model.pb", &sm);
    assert_eq!(r.files[0].format.as_str(), "saved-model", "{}", dump(&r));
    assert_has(&r, "keras.tfoplambda", Severity::High);
    // A loose Keras config.json is judged too.
    let cfg = functional(vec![dense(serde_json::json!("os.system"))]).to_string();
    assert_has(
        &scan("config.json", cfg.as_bytes()),
        "keras.custom-object",
        Severity::Critical,
    );
    // A SavedModel inside a zip is found by content, whatever its name.
    let f = saved_model(&[node_def("leak", "ReadFile", &["p"], None)], &[]);
    let z = zip(&[("export/variables/blob", &f[..])]);
    assert_has(&scan("export.zip", &z), "savedmodel.op", Severity::High);
    // A large one (its first bytes alone do not parse) is read by its name,
    // in zip and tar archives.
    let big_const = "x".repeat(10_000);
    let f = saved_model(
        &[
            node_def("c", "Const", &[], Some(&big_const)),
            node_def("leak", "ReadFile", &["c"], None),
        ],
        &[],
    );
    let z = zip(&[("export/saved_model.pb", &f[..])]);
    assert_has(&scan("export.zip", &z), "savedmodel.op", Severity::High);
    let t = tar(&[("export/saved_model.pb", &f[..])]);
    assert_has(&scan("export.tar", &t), "savedmodel.op", Severity::High);
}

// ---------- polyglots and hidden containers ----------

/// A valid safetensors file whose last (U8) tensor is a whole zip archive
/// holding `inner`: zip readers find the directory at the end of the file.
fn safetensors_ending_with_zip(inner: &[u8]) -> Vec<u8> {
    let z = zip(&[("archive/data.pkl", inner)]);
    let header = format!(
        r#"{{"a":{{"dtype":"F32","shape":[2],"data_offsets":[0,8]}},"b":{{"dtype":"U8","shape":[{}],"data_offsets":[8,{}]}}}}"#,
        z.len(),
        8 + z.len()
    );
    let mut data = vec![0u8; 8];
    data.extend_from_slice(&z);
    safetensors_raw(&header, &data)
}

#[test]
fn safetensors_that_is_also_a_zip_holding_a_pickle_is_flagged() {
    let f = safetensors_ending_with_zip(&p0_call("os", "system", "id"));
    let r = scan("model.safetensors", &f);
    assert_eq!(r.files[0].format, Format::Safetensors);
    assert!(
        !has(&r, "safetensors.invalid", Severity::Info),
        "{}",
        dump(&r)
    );
    assert_has(&r, "polyglot.zip", Severity::High);
    assert_has(&r, "pickle.global.critical", Severity::Critical);
}

#[test]
fn safetensors_whose_tensors_together_form_a_zip_is_flagged() {
    // The archive starts in one float tensor and ends in the next: no single
    // tensor holds it, the file's end still makes it a zip.
    let z = zip(&[("archive/data.pkl", &p0_call("os", "system", "id")[..])]);
    let mut data = vec![0u8; 8];
    data.extend_from_slice(&z);
    while data.len() % 8 != 0 {
        data.insert(0, 0);
    }
    let half = data.len() / 2;
    let header = format!(
        r#"{{"a":{{"dtype":"F32","shape":[{}],"data_offsets":[0,{half}]}},"b":{{"dtype":"F32","shape":[{}],"data_offsets":[{half},{}]}}}}"#,
        half / 4,
        (data.len() - half) / 4,
        data.len()
    );
    let r = scan("model.safetensors", &safetensors_raw(&header, &data));
    assert!(
        !has(&r, "safetensors.invalid", Severity::Info),
        "{}",
        dump(&r)
    );
    assert_has(&r, "polyglot.zip", Severity::High);
    assert_has(&r, "pickle.global.critical", Severity::Critical);
}

#[test]
fn zip_stored_inside_a_tensor_is_found() {
    // The zip sits in the middle of a float tensor's bytes is not searched;
    // at the start of any tensor, or anywhere in a byte tensor, it is.
    let z = zip(&[("x.pkl", &p0_call("subprocess", "run", "id")[..])]);
    for (dtype, pad_before) in [("F32", 0usize), ("U8", 64)] {
        let mut t = vec![0u8; pad_before];
        t.extend_from_slice(&z);
        while t.len() % 4 != 0 {
            t.push(0);
        }
        t.extend_from_slice(&[0u8; 32]); // data after the zip: the file does not end with it
        let header = format!(
            r#"{{"hidden":{{"dtype":"{dtype}","shape":[{}],"data_offsets":[0,{}]}},"z":{{"dtype":"F32","shape":[4],"data_offsets":[{},{}]}}}}"#,
            if dtype == "F32" { t.len() / 4 } else { t.len() },
            t.len(),
            t.len(),
            t.len() + 16
        );
        let mut data = t.clone();
        data.extend_from_slice(&[0u8; 16]);
        let f = safetensors_raw(&header, &data);
        let r = scan("model.safetensors", &f);
        assert!(
            !has(&r, "safetensors.invalid", Severity::Info),
            "{}",
            dump(&r)
        );
        assert_has(&r, "polyglot.zip", Severity::High);
        assert_has(&r, "pickle.global.critical", Severity::Critical);
    }
}

#[test]
fn zip_after_padding_or_another_file_is_found() {
    let inner = zip(&[("evil.pkl", &p0_call("os", "system", "id")[..])]);
    let prefixes: Vec<Vec<u8>> = vec![
        vec![0u8; 4096],                           // padding
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(), // another file
        benign_p2(),                               // a harmless pickle first
        npy("<f4", &[0u8; 16]),                    // a NumPy array first
    ];
    for p in prefixes {
        let mut f = p.clone();
        f.extend_from_slice(&inner);
        let r = scan("x.bin", &f);
        assert_has(&r, "pickle.global.critical", Severity::Critical);
    }
    // A GGUF file is a zip too when one is appended (its metadata is intact).
    let mut f = gguf(&[]);
    f.extend_from_slice(&inner);
    let r = scan("x.gguf", &f);
    assert_eq!(r.files[0].format, Format::Gguf);
    assert_has(&r, "polyglot.zip", Severity::High);
    assert_has(&r, "pickle.global.critical", Severity::Critical);
}

#[test]
fn raw_zlib_and_lzma_streams_holding_pickles_are_scanned() {
    let evil = p0_call("os", "system", "id");
    // zlib (RFC 1950), as zlib.compress / joblib's zlib compressor write it
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut z, &evil).unwrap();
    let z = z.finish().unwrap();
    let r = scan("model.pkl.z", &z);
    assert_has(&r, "pickle.global.critical", Severity::Critical);
    assert!(r
        .files
        .iter()
        .any(|f| f.member.as_deref() == Some("<zlib>")));
    // legacy .lzma (LZMA alone)
    let mut l = Vec::new();
    lzma_rs::lzma_compress(&mut &evil[..], &mut l).unwrap();
    let r = scan("model.pkl.lzma", &l);
    assert_has(&r, "pickle.global.critical", Severity::Critical);
    assert!(r
        .files
        .iter()
        .any(|f| f.member.as_deref() == Some("<lzma>")));
    // Inside an archive, also when larger than what identifies a member.
    let big = p0_call("os", "system", &"A".repeat(20_000));
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::none());
    std::io::Write::write_all(&mut z, &big).unwrap();
    let z = z.finish().unwrap();
    assert!(z.len() > 4096);
    let r = scan("bundle.zip", &zip(&[("model.pkl.z", &z[..])]));
    assert_has(&r, "pickle.global.critical", Severity::Critical);
    // A truncated stream: what decodes before the break is still scanned.
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::none());
    std::io::Write::write_all(&mut z, &big).unwrap();
    let mut z = z.finish().unwrap();
    z.truncate(z.len() - 100);
    assert_has(
        &scan("cut.pkl.z", &z),
        "pickle.global.critical",
        Severity::Critical,
    );
    // A benign compressed pickle stays at info.
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut z, &benign_p2()).unwrap();
    assert_clean(&scan("ok.pkl.z", &z.finish().unwrap()));
}

#[test]
fn tensor_names_that_look_like_paths_are_low() {
    for name in [
        "../../escape",
        "/abs/path",
        "C:\\\\Windows\\\\x",
        "a/../../b",
    ] {
        let h = format!(r#"{{"{name}":{{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}}}"#);
        let r = scan("model.safetensors", &safetensors_raw(&h, &[0; 4]));
        assert_has(&r, "safetensors.path-like-name", Severity::Low);
        assert!(!has(&r, "safetensors.path-like-name", Severity::Medium));
    }
    let h = r#"{"model.layers.0/attn":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    assert_clean(&scan("model.safetensors", &safetensors_raw(h, &[0; 4])));
}

// ---------- cross-check with the `gguf` package (llama.cpp's writer) ----------

/// `$SAFEWEIGHTS_PYTHON` (else the workspace venv) when it has the `gguf` package.
fn python_with_gguf() -> Option<std::path::PathBuf> {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("SAFEWEIGHTS_PYTHON") {
        candidates.push(std::path::PathBuf::from(p));
    }
    candidates
        .push(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"));
    candidates.into_iter().find(|c| {
        std::process::Command::new(c)
            .args(["-c", "import gguf, numpy"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

const WRITE_GGUF: &str = r#"
import sys, numpy as np, gguf
path, default, tool = sys.argv[1], sys.argv[2], sys.argv[3]
w = gguf.GGUFWriter(path, "llama")
w.add_block_count(1)
w.add_tokenizer_model("gpt2")
w.add_token_list(["<s>", "</s>", "hi"])
w.add_token_types([3, 3, 1])
w.add_token_scores([0.0, 0.0, -1.0])
if tool:
    w.add_chat_template([{"name": "default", "template": default}, {"name": "tool_use", "template": tool}])
else:
    w.add_chat_template(default)
w.add_tensor("w", np.zeros(8, dtype=np.float32))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
"#;

#[test]
#[allow(clippy::print_stderr)]
fn gguf_files_written_by_llama_cpp_writer_are_judged() {
    let Some(py) = python_with_gguf() else {
        eprintln!("skipping: no Python with the gguf package (set SAFEWEIGHTS_PYTHON)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, default: &str, tool: &str| {
        let p = dir.path().join(name);
        let out = std::process::Command::new(&py)
            .args(["-c", WRITE_GGUF, p.to_str().unwrap(), default, tool])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read(p).unwrap()
    };
    for t in [LLAMA3, LLAMA31_TOOLS, CHATML, MISTRAL, QWEN_NS] {
        let r = scan("ok.gguf", &write("ok.gguf", t, ""));
        assert_eq!(r.files[0].format, Format::Gguf);
        assert_clean(&r);
    }
    let r = scan("evil.gguf", &write("evil.gguf", EVIL_TEMPLATES[0].0, ""));
    assert_has(&r, "template.python-internals", Severity::Critical);
    // A named template (`tokenizer.chat_template.tool_use`) next to a clean default.
    let r = scan(
        "named.gguf",
        &write("named.gguf", CHATML, EVIL_TEMPLATES[5].0),
    );
    assert_has(&r, "template.python-internals", Severity::Critical);
    let f = r
        .findings
        .iter()
        .find(|f| f.rule == "template.python-internals")
        .unwrap();
    assert!(
        f.what.contains("tokenizer.chat_template.tool_use"),
        "{}",
        f.what
    );
    assert!(!has(&r, "gguf.malformed", Severity::Info), "{}", dump(&r));
}

// ---------- the new readers never panic ----------

fn hardening_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let evil = p0_call("os", "system", "id");
    let mut zl = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut zl, &evil).unwrap();
    let mut lz = Vec::new();
    lzma_rs::lzma_compress(&mut &evil[..], &mut lz).unwrap();
    let cfg =
        serde_json::json!({"chat_template": [{"name": "x", "template": EVIL_TEMPLATES[1].0}]});
    vec![
        (
            "a.gguf",
            gguf(&[("tokenizer.chat_template", EVIL_TEMPLATES[0].0)]),
        ),
        (
            "saved_model.pb",
            saved_model(
                &[
                    node_def("f", "Const", &[], Some("/x")),
                    node_def("s", "SaveV2", &["f"], None),
                ],
                &[node_def("r", "ReadFile", &["f"], None)],
            ),
        ),
        (
            "m.keras",
            keras_zip(&functional(vec![dense(serde_json::json!("os.system"))])),
        ),
        ("m.safetensors", safetensors_ending_with_zip(&evil)),
        ("x.z", zl.finish().unwrap()),
        ("x.lzma", lz),
        ("tokenizer_config.json", cfg.to_string().into_bytes()),
        (
            "chat_template.jinja",
            EVIL_TEMPLATES[3].0.as_bytes().to_vec(),
        ),
    ]
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;
    use safeweights_scan::Limits;

    fn opts() -> ScanOptions {
        ScanOptions::new().limits(Limits {
            max_expanded_bytes: 1 << 20,
            ..Limits::default()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

        #[test]
        fn mutated_hardening_seeds_never_panic(
            which in 0usize..8,
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let (name, mut d) = hardening_seeds().swap_remove(which);
            for (pos, b) in edits {
                let n = d.len();
                d[pos % n] = b;
            }
            let keep = d.len() - cut % (d.len() / 4 + 1);
            d.truncate(keep);
            let r = scan_bytes(name, &d, &opts());
            let _ = safeweights_scan::render_sarif(&r);
        }

        #[test]
        fn arbitrary_templates_never_panic(t in "[{}%#'\"\\\\x5f_a-z.|~()\\[\\] -]{0,200}") {
            let _ = scan_bytes("chat_template.jinja", t.as_bytes(), &opts());
        }
    }
}
