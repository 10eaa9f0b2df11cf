//! The corpus: one crafted file per technique, each with the finding it must
//! produce; benign real files must produce nothing above info. The case table
//! is `common/cases.rs` (shared with `examples/dump_corpus.rs`).
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.

mod common;
use common::*;
#[path = "common/cases.rs"]
mod cases;
use cases::*;

use safeweights_scan::{
    exit_code, scan_bytes, scan_file, scan_paths, Format, Policy, Report, ScanOptions, Severity,
};

fn dump(r: &Report) -> String {
    safeweights_scan::render_human(r, &Default::default())
}

#[test]
fn corpus() {
    let mut failures = Vec::new();
    for c in cases() {
        let r = scan_bytes(c.name, &c.data, &c.opts);
        let hit = r.findings.iter().find(|f| {
            f.rule == c.rule
                && f.severity >= c.severity
                && c.member.is_none_or(|m| f.member.as_deref() == Some(m))
        });
        if hit.is_none() {
            failures.push(format!(
                "{}: expected {} ({}) {:?}\n{}",
                c.name,
                c.rule,
                c.severity,
                c.member,
                dump(&r)
            ));
        }
        assert_eq!(exit_code(&r, c.severity), 1, "{}", c.name);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn benign_fixtures_are_at_most_info() {
    for (name, fmt) in [
        ("torch_zip.pt", Format::PytorchZip),
        ("torch_legacy.pt", Format::PytorchLegacy),
        ("numpy_float.npy", Format::Npy),
        ("numpy_arrays.npz", Format::Npz),
        ("model.safetensors", Format::Safetensors),
    ] {
        let r = scan_file(fixture(name), &ScanOptions::new());
        assert!(r.errors.is_empty());
        assert_eq!(r.files[0].format, fmt, "{name}");
        assert!(
            r.findings.iter().all(|f| f.severity == Severity::Info),
            "{name}:\n{}",
            dump(&r)
        );
        assert_eq!(exit_code(&r, Severity::Low), 0, "{name}");
    }
    // The pickle formats say "convert".
    let r = scan_file(fixture("torch_zip.pt"), &ScanOptions::new());
    assert!(r.findings.iter().any(|f| f.rule == "pickle.format"));
}

/// A protocol 2 pickle that imports `module.name` (GLOBAL) and stops.
fn importing(module: &str, name: &str) -> Vec<u8> {
    let mut p = b"\x80\x02c".to_vec();
    p.extend_from_slice(format!("{module}\n{name}\n.").as_bytes());
    p
}

/// The converter's allow-list and the scanner's judging table are two lists:
/// every global the converter's data-only evaluator accepts must be judged
/// safe by the scanner (a pickle importing it is at most "info: convert").
#[test]
fn every_global_the_converter_accepts_is_safe() {
    use safeweights_pickle::{value::allowed_globals, TorchDtype};
    let mut accepted: Vec<(String, String)> = allowed_globals()
        .map(|(m, n)| (m.to_string(), n.to_string()))
        .collect();
    assert!(accepted.len() > 30, "{accepted:?}");
    // `torch.<dtype>` attributes, aliases included, read as dtypes.
    let aliases = [
        "float", "double", "half", "long", "int", "short", "chalf", "cfloat", "cdouble",
    ];
    for name in TorchDtype::ALL
        .iter()
        .map(|d| d.torch_name())
        .chain(aliases)
    {
        assert!(TorchDtype::from_torch_name(name).is_some(), "{name}");
        accepted.push(("torch".into(), name.into()));
    }
    // Legacy tar checkpoints: `torch.FloatTensor`, `torch.cuda.LongTensor`, ...
    // for every typed storage class.
    let legacy: Vec<(String, String)> = accepted
        .iter()
        .filter(|(m, _)| m == "torch" || m == "torch.cuda")
        .filter_map(|(m, n)| {
            let base = n.strip_suffix("Storage")?;
            TorchDtype::from_storage_class(n)?;
            Some((m.clone(), format!("{base}Tensor")))
        })
        .collect();
    assert!(legacy.len() >= 2 * 17, "{legacy:?}");
    accepted.extend(legacy);

    let mut unsafe_ = Vec::new();
    for (m, n) in &accepted {
        let r = scan_bytes("g.pkl", &importing(m, n), &ScanOptions::new());
        assert_eq!(r.files[0].format, Format::Pickle, "{m}.{n}");
        if r.findings.iter().any(|f| f.severity > Severity::Info) {
            unsafe_.push(format!("{m}.{n}:\n{}", dump(&r)));
        }
    }
    assert!(unsafe_.is_empty(), "{}", unsafe_.join("\n"));
}

#[test]
fn our_writer_is_clean_even_under_policy() {
    let data: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
    let bytes = safeweights::serialize(
        &[safeweights::TensorRef {
            name: "w",
            dtype: safeweights::Dtype::F32,
            shape: &[2],
            data: &data,
        }],
        None,
    )
    .unwrap();
    let opts = ScanOptions::new().policy(Policy::SafetensorsOnly);
    let r = scan_bytes("w.safetensors", &bytes, &opts);
    assert!(r.findings.is_empty(), "{}", dump(&r));
    assert_eq!(r.files[0].format, Format::Safetensors);
    let gguf = scan_bytes(
        "m.gguf",
        b"GGUF\x03\x00\x00\x00",
        &opts.clone().allow_gguf(true),
    );
    assert!(gguf.findings.is_empty());
}

#[test]
fn headerless_protocol0_benign_is_info() {
    // protocol 0: {'a': 1} with no PROTO header
    let r = scan_bytes("x", b"(dp0\nS'a'\np1\nI1\ns.", &ScanOptions::new());
    assert_eq!(r.files[0].format, Format::Pickle);
    assert_eq!(r.highest(), Some(Severity::Info));
}

#[test]
fn extension_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    for (c, file) in disguised().iter().zip(["weights.safetensors", "notes.txt"]) {
        std::fs::write(dir.path().join(file), &c.data).unwrap();
    }
    let r = scan_paths(&[dir.path()], &ScanOptions::new());
    assert_eq!(r.summary.files, 2);
    assert_eq!(r.summary.findings.critical, 2, "{}", dump(&r));
}

#[test]
fn onnx_symlink_escape_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"x").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("w.bin")).unwrap();
    let p = dir.path().join("model.onnx");
    std::fs::write(&p, onnx_external("w.bin")).unwrap();
    let r = scan_file(&p, &ScanOptions::new());
    assert_eq!(r.files[0].format, Format::Onnx);
    assert!(
        r.findings
            .iter()
            .any(|f| f.rule == "onnx.external-data-escape"),
        "{}",
        dump(&r)
    );
    // A plain relative location inside the folder is fine.
    std::fs::write(&p, onnx_external("weights.bin")).unwrap();
    assert!(scan_file(&p, &ScanOptions::new()).findings.is_empty());
}

/// Folders are walked depth first in name order; `.git` is not entered,
/// symlinks are followed (to a file and, since issue 21, to a folder: a
/// loader opens what they point at); a broken one is left out.
#[test]
fn folders_are_walked_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for d in ["b", "b/c", ".git", "a.d"] {
        std::fs::create_dir(root.join(d)).unwrap();
    }
    for f in [
        "z.txt",
        "b/c/y.txt",
        "b/a.txt",
        ".git/config",
        "a.d/x.txt",
        "B.txt",
    ] {
        std::fs::write(root.join(f), b"plain text").unwrap();
    }
    std::os::unix::fs::symlink(root.join("z.txt"), root.join("link-to-file")).unwrap();
    std::os::unix::fs::symlink(root.join("b"), root.join("link-to-dir")).unwrap();
    std::os::unix::fs::symlink(root.join("missing"), root.join("link-broken")).unwrap();
    let r = scan_paths(&[root], &ScanOptions::new());
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let files: Vec<String> = r
        .files
        .iter()
        .map(|f| {
            let rel = std::path::Path::new(&f.file).strip_prefix(root).unwrap();
            rel.display().to_string()
        })
        .collect();
    assert_eq!(
        files,
        [
            "B.txt",
            "a.d/x.txt",
            "b/a.txt",
            "b/c/y.txt",
            "link-to-dir/a.txt",
            "link-to-dir/c/y.txt",
            "link-to-file",
            "z.txt"
        ]
    );
    assert_eq!(r.summary.files, 8);
    assert!(r.findings.is_empty(), "{}", dump(&r));
    // a folder that cannot be read is an error that names it
    let r = scan_paths(&[root.join("nope")], &ScanOptions::new());
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].file, root.join("nope").display().to_string());
    assert!(
        r.errors[0].message.contains("No such file"),
        "{:?}",
        r.errors
    );
}

/// Issue 21: `model/ckpt -> ../elsewhere` holding an `os.system` pickle
/// must not scan clean (`torch.load(model/ckpt/x.pt)` runs it), also under
/// the safetensors-only policy; a loop is bounded and noted.
#[test]
fn issue21_scan_looks_behind_directory_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("x.pt"), p4_call("os", "system", "id")).unwrap();
    std::fs::write(model.join("config.json"), b"{}").unwrap();
    std::os::unix::fs::symlink("../elsewhere", model.join("ckpt")).unwrap();
    std::os::unix::fs::symlink("..", model.join("up")).unwrap(); // a loop through the parent
    for policy in [Policy::Default, Policy::SafetensorsOnly] {
        let opts = ScanOptions::new().policy(policy);
        let r = scan_paths(&[&model], &opts);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let critical: Vec<&str> = r
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Critical)
            .map(|f| f.file.as_str())
            .collect();
        let x = model.join("ckpt/x.pt").display().to_string();
        assert!(critical.contains(&x.as_str()), "{}", dump(&r));
        assert_eq!(exit_code(&r, Severity::Medium), 1);
        let notes: Vec<&str> = r
            .findings
            .iter()
            .filter(|f| f.rule == "path.symlink")
            .map(|f| f.what.as_str())
            .collect();
        assert!(
            notes.iter().any(|w| w.contains("leads outside")),
            "{notes:?}"
        );
        assert!(notes.iter().any(|w| w.contains("loop")), "{notes:?}");
    }
}

#[test]
fn exit_codes() {
    let r = scan_bytes("x", &p4_call("os", "system", "id"), &ScanOptions::new());
    assert_eq!(exit_code(&r, Severity::Critical), 1);
    let r = scan_bytes("x", b"plain text", &ScanOptions::new());
    assert_eq!(exit_code(&r, Severity::Info), 0);
    let r = scan_paths(&["/nonexistent/definitely"], &ScanOptions::new());
    assert_eq!(exit_code(&r, Severity::Critical), 2);
}

#[test]
fn renderers() {
    let r = scan_bytes(
        "evil.pt",
        &torch_zip(&p4_call("os", "system", "id")),
        &ScanOptions::new(),
    );
    let json: serde_json::Value = serde_json::from_str(&safeweights_scan::render_json(&r)).unwrap();
    assert_eq!(json["schema_version"], 1);
    let f = &json["findings"][0];
    assert_eq!(f["severity"], "critical");
    assert_eq!(f["rule"], "pickle.global.critical");
    assert_eq!(f["member"], "archive/data.pkl");
    assert_eq!(json["files"][0]["format"], "pytorch-zip");
    assert_eq!(json["summary"]["findings"]["critical"], 1);
    let back: Report = serde_json::from_value(json).unwrap();
    assert_eq!(back, r);

    let sarif: serde_json::Value =
        serde_json::from_str(&safeweights_scan::render_sarif(&r)).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let res = &sarif["runs"][0]["results"][0];
    assert_eq!(res["ruleId"], "pickle.global.critical");
    assert_eq!(res["level"], "error");
    assert_eq!(
        res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "evil.pt"
    );
    let rules = sarif["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap();
    assert_eq!(rules.len(), safeweights_scan::RULES.len());

    let human = safeweights_scan::render_human(&r, &Default::default());
    assert!(human.contains("CRITICAL pickle.global.critical evil.pt!archive/data.pkl"));
    assert!(human
        .lines()
        .last()
        .unwrap()
        .starts_with("scanned 1 file(s)"));
    let colored = safeweights_scan::render_human(
        &r,
        &safeweights_scan::HumanOptions {
            color: true,
            min_severity: None,
        },
    );
    assert!(colored.contains("\x1b["));
}

#[test]
fn every_rule_in_the_corpus_is_catalogued() {
    for c in cases() {
        assert!(safeweights_scan::rule(c.rule).is_some(), "{}", c.rule);
    }
}

/// Issue 21: a file named `evil\r\x1b[2K\x1b[32mOK clean.pkl` must not
/// overwrite its own CRITICAL line in the human output; JSON stays exact and
/// the SARIF `uri` is percent-encoded.
#[test]
fn issue21_untrusted_names_never_reach_the_terminal_raw() {
    let dir = tempfile::tempdir().unwrap();
    let name = "evil\r\x1b[2K\x1b[32mOK clean.pkl";
    let path = dir.path().join(name);
    std::fs::write(&path, p4_call("os", "system", "id")).unwrap();
    let r = scan_paths(&[dir.path()], &ScanOptions::new());
    assert_eq!(r.summary.findings.critical, 1, "{}", dump(&r));
    for color in [false, true] {
        let human = safeweights_scan::render_human(
            &r,
            &safeweights_scan::HumanOptions {
                color,
                min_severity: None,
            },
        );
        assert!(!human.contains('\r'), "{human:?}");
        assert!(!human.contains("\x1b[2K"), "{human:?}");
        assert!(!human.contains("\x1b[32m"), "{human:?}");
        assert!(
            human.contains("evil\\r\\u{1b}[2K\\u{1b}[32mOK clean.pkl"),
            "{human:?}"
        );
    }
    // JSON keeps the exact name
    let json: serde_json::Value = serde_json::from_str(&safeweights_scan::render_json(&r)).unwrap();
    assert_eq!(json["findings"][0]["file"], path.display().to_string());
    // SARIF: a percent-encoded URI
    let sarif = safeweights_scan::sarif_value(&r);
    let uri = sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
        ["artifactLocation"]["uri"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        uri.ends_with("/evil%0D%1B%5B2K%1B%5B32mOK%20clean.pkl"),
        "{uri}"
    );
    assert_eq!(safeweights_scan::uri_of("a b/%#?:x"), "a%20b/%25%23%3F%3Ax");
}
