//! Writes the scanner's crafted technique corpus to a folder, for
//! `bench/scan.py` (detections side by side with picklescan and modelscan):
//!
//!     cargo run --release -p safeweights-scan --example dump_corpus -- OUT_DIR
//!
//! One file per distinct crafted byte string of `tests/corpus.rs` `cases()`
//! (the byte builders are shared: `tests/common/mod.rs` is included as is),
//! plus the two disguised files of its `extension_is_ignored` test, and
//! `OUT_DIR/manifest.json`: for each file its corpus case names, the rules the
//! corpus expects, and the benchmark's label:
//!
//! - `attack`: loading the file (or extracting it) runs attacker-chosen code,
//!   calls a dangerous primitive, or reaches outside the model folder;
//! - `suspect`: a crafted anomaly with no working payload (broken or odd zip,
//!   invalid safetensors, unknown but plausible imports, a TorchScript program,
//!   a computed global): safeweights flags these by design, they are counted
//!   apart, neither as attacks nor as false alarms.
//!
//! Each file gets the extension a user would give it (peers choose their
//! scanner from the extension; safeweights never looks at it).
//! Cases that only make sense with non-default options (`limit-members`,
//! `limit-expanded*`, `policy-*`) are left out: the peers have no such knobs.
//!
//! Keep the table in step with `tests/corpus.rs`; as a guard, every file is
//! scanned here with `scan_bytes` and must produce the finding the corpus
//! expects, or this exits 1. Nothing is ever unpickled or executed.

#[path = "../tests/common/mod.rs"]
mod common;
use common::*;

use safeweights_scan::{scan_bytes, ScanOptions, Severity};
use std::io::Write;

struct Item {
    /// Corpus case names (several when the corpus checks two findings on the same bytes).
    names: Vec<&'static str>,
    /// Expected rules, with their minimum severity, one per name.
    rules: Vec<(&'static str, Severity)>,
    ext: &'static str,
    label: &'static str,
    data: Vec<u8>,
}

fn torch_zip(pickle: &[u8]) -> Vec<u8> {
    zip(&[
        ("archive/data.pkl", pickle),
        ("archive/byteorder", b"little"),
        ("archive/data/0", &[0u8; 64]),
        ("archive/version", b"3\n"),
    ])
}

const A: &str = "attack";
const S: &str = "suspect";

fn items() -> Vec<Item> {
    use Severity::*;
    let mut v: Vec<Item> = Vec::new();
    let mut add = |name: &'static str,
                   ext: &'static str,
                   label: &'static str,
                   data: Vec<u8>,
                   rule: &'static str,
                   sev: Severity| {
        // Same bytes as an earlier case: one file, both expectations.
        if let Some(it) = v.iter_mut().find(|it| it.data == data) {
            it.names.push(name);
            it.rules.push((rule, sev));
            return;
        }
        v.push(Item {
            names: vec![name],
            rules: vec![(rule, sev)],
            ext,
            label,
            data,
        });
    };
    const CRIT: &str = "pickle.global.critical";
    let evil = p0_call("os", "system", "echo pwned");
    add("p0-os-system", "pkl", A, evil.clone(), CRIT, Critical);
    {
        let mut p = vec![0x80, 0x02];
        p.extend_from_slice(b"cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.");
        add("p2-posix-system", "pkl", A, p, CRIT, Critical);
    }
    add(
        "p4-stack-global-subprocess",
        "pkl",
        A,
        p4_call("subprocess", "Popen", "id"),
        CRIT,
        Critical,
    );
    add(
        "p1-inst",
        "pkl",
        A,
        b"(S'id'\nios\nsystem\n.".to_vec(),
        CRIT,
        Critical,
    );
    add(
        "p1-obj-exec",
        "pkl",
        A,
        b"(cbuiltins\nexec\nS'print(1)'\no.".to_vec(),
        CRIT,
        Critical,
    );
    add(
        "p2-newobj-unknown",
        "pkl",
        S,
        b"\x80\x02csklearn.linear_model\nLogisticRegression\n)\x81}b.".to_vec(),
        "pickle.global.unknown",
        High,
    );
    for (name, module, func, arg) in [
        ("p4-dotted-pathlib-os-system", "pathlib", "os.system", "id"),
        (
            "p4-dotted-torch-os-system",
            "torch.serialization",
            "os.system",
            "id",
        ),
        ("p4-torch-load", "torch", "load", "x.pt"),
        ("p4-numpy-load", "numpy", "load", "x.npy"),
        ("p4-runpy", "runpy", "run_path", "x.py"),
        ("p4-pty-spawn", "pty", "spawn", "sh"),
        ("p4-webbrowser", "webbrowser", "open", "http://x"),
        ("p4-pickle-loads", "pickle", "loads", "x"),
        ("p4-attrgetter", "operator", "attrgetter", "x"),
        ("p4-partial", "functools", "partial", "x"),
        ("p4-ctypes", "ctypes", "CDLL", "libc.so.6"),
        ("p4-code", "code", "interact", "x"),
        ("p4-socket", "socket", "create_connection", "x"),
        ("p4-sys", "sys", "exit", "x"),
    ] {
        add(name, "pkl", A, p4_call(module, func, arg), CRIT, Critical);
    }
    add(
        "p4-unknown",
        "pkl",
        A,
        p4_call("evilpkg.payload", "run", "x"),
        "pickle.global.unknown",
        High,
    );
    {
        let mut p = vec![0x80, 0x02];
        p.extend_from_slice(b"X\x02\x00\x00\x00osq\x05X\x06\x00\x00\x00systemq\x06");
        p.extend_from_slice(b"0");
        p.extend_from_slice(b"0");
        p.extend_from_slice(b"h\x05h\x06\x93X\x02\x00\x00\x00id\x85R.");
        add("memo-strings-stack-global", "pkl", A, p, CRIT, Critical);
    }
    add(
        "memo-global",
        "pkl",
        A,
        b"\x80\x02cbuiltins\neval\nq\x010h\x01X\x01\x00\x00\x001\x85R.".to_vec(),
        CRIT,
        Critical,
    );
    {
        let mut p = vec![0x80, 0x02];
        p.extend_from_slice(b"cbuiltins\ngetattr\n");
        p.extend_from_slice(b"cbuiltins\n__import__\nX\x02\x00\x00\x00os\x85R");
        p.extend_from_slice(b"X\x06\x00\x00\x00system\x86R");
        p.extend_from_slice(b"X\x02\x00\x00\x00id\x85R.");
        add("getattr-import-chain", "pkl", A, p, CRIT, Critical);
    }
    {
        let mut p = benign_p2();
        p.extend(p4_call("os", "system", "id"));
        add("benign-then-malicious", "pkl", A, p, CRIT, Critical);
    }
    {
        let mut p = evil.clone();
        p.extend_from_slice(b"\xff\xff\xff garbage");
        add(
            "malicious-then-garbage",
            "pkl",
            A,
            p.clone(),
            CRIT,
            Critical,
        );
        add(
            "malicious-then-garbage-malformed",
            "pkl",
            A,
            p,
            "pickle.malformed",
            Medium,
        );
    }
    add(
        "truncated",
        "pkl",
        S,
        b"\x80\x02}q\x00X\x05\x00\x00\x00ab".to_vec(),
        "pickle.malformed",
        Medium,
    );
    add(
        "build-on-global",
        "pkl",
        A,
        b"\x80\x02cos\nenviron\n}X\x01\x00\x00\x00aX\x01\x00\x00\x00bsb.".to_vec(),
        "pickle.build.global",
        High,
    );
    add(
        "ext1",
        "pkl",
        A,
        b"\x80\x02\x82\x01)R.".to_vec(),
        "pickle.ext",
        High,
    );
    add(
        "stack-global-unresolved",
        "pkl",
        S,
        b"\x80\x04cbuiltins\nstr\n)RX\x01\x00\x00\x00x\x93.".to_vec(),
        "pickle.global.unresolved",
        High,
    );
    add(
        "reduce-non-global",
        "pkl",
        S,
        b"\x80\x02X\x01\x00\x00\x00x)R.".to_vec(),
        "pickle.call.unresolved",
        High,
    );
    add(
        "torch-zip-malicious",
        "pt",
        A,
        torch_zip(&p4_call("os", "system", "id")),
        CRIT,
        Critical,
    );
    // Zip anomalies.
    {
        let mut bad = m("archive/data.pkl", &benign_p2());
        bad.crc = Some(0xdead_beef);
        add(
            "zip-bad-crc",
            "pt",
            S,
            zip_with(&[bad, m("archive/version", b"3")], &[]),
            "zip.crc-mismatch",
            Medium,
        );
        let mut enc = m("weights.bin", b"xxxx");
        enc.flags = 1;
        add(
            "zip-encrypted",
            "zip",
            S,
            zip_with(&[enc], &[]),
            "zip.encrypted",
            Medium,
        );
        let mut odd = m("weights.bin", b"xxxx");
        odd.flags = 0x2000;
        add(
            "zip-odd-flags",
            "zip",
            S,
            zip_with(&[odd], &[]),
            "zip.flags",
            Medium,
        );
        let mut ln = m("archive/data.pkl", &benign_p2());
        ln.local_name = Some("archive/other.pkl".into());
        add(
            "zip-name-mismatch",
            "pt",
            S,
            zip_with(&[ln], &[]),
            "zip.header-mismatch",
            Medium,
        );
        let mut sz = m("archive/data.pkl", &benign_p2());
        sz.central_size = Some(3);
        add(
            "zip-size-mismatch",
            "pt",
            S,
            zip_with(&[sz], &[]),
            "zip.header-mismatch",
            Medium,
        );
        let dup = zip(&[
            ("archive/data.pkl", &benign_p2()),
            ("archive/data.pkl", &p4_call("os", "system", "id")),
        ]);
        add(
            "zip-duplicate",
            "pt",
            A,
            dup.clone(),
            "zip.duplicate-name",
            Medium,
        );
        add("zip-duplicate-second-scanned", "pt", A, dup, CRIT, Critical);
        let ov = zip_overlapping(&p4_call("os", "system", "id"));
        add("zip-overlap", "pt", A, ov.clone(), "zip.overlap", Medium);
        add("zip-overlap-hidden-pickle", "pt", A, ov, CRIT, Critical);
        add(
            "zip-prefix-data",
            "pt",
            A,
            zip_with(
                &[m("archive/data.pkl", &p4_call("os", "system", "id"))],
                b"MZ junk before the archive",
            ),
            "zip.prefix-data",
            Medium,
        );
        add(
            "zip-traversal",
            "zip",
            A,
            zip(&[("../../etc/cron.d/x", b"* * * * * root id")]),
            "zip.path-traversal",
            Medium,
        );
        let mut defl = m("payload.pkl", &p0_call("subprocess", "call", "id"));
        defl.deflate = true;
        add(
            "zip-deflated-member",
            "zip",
            A,
            zip_with(&[defl], &[]),
            CRIT,
            Critical,
        );
    }
    // Containers.
    {
        let inner = zip(&[("payload.pkl", &evil)]);
        let t = tar(&[("models/inner.zip", &inner)]);
        add(
            "zip-tar-zip",
            "zip",
            A,
            zip(&[("bundle.tar", &t)]),
            CRIT,
            Critical,
        );
        add(
            "tar-gz",
            "tar.gz",
            A,
            gzip(&tar(&[("model.pt", &torch_zip(&evil))])),
            CRIT,
            Critical,
        );
        add("gzip-pickle", "pkl.gz", A, gzip(&evil), CRIT, Critical);
        let mut sz = b"7z\xbc\xaf\x27\x1c\x00\x04".to_vec();
        sz.extend_from_slice(&[0u8; 32]);
        add("7z", "7z", S, sz, "archive.cannot-inspect", Medium);
        let mut t2 = Vec::new();
        tar_entry(&mut t2, "../evil.pkl", &evil, b'0', "");
        tar_entry(&mut t2, "link", b"", b'2', "/etc/passwd");
        t2.extend_from_slice(&[0u8; 1024]);
        add("tar-traversal", "tar", A, t2, "tar.path-traversal", Medium);
    }
    // NumPy object arrays.
    {
        let n = npy("|O", &p4_call("os", "system", "id"));
        add("npy-object", "npy", A, n.clone(), "npy.object-array", Low);
        add("npy-object-pickle", "npy", A, n.clone(), CRIT, Critical);
        add(
            "npz-object-pickle",
            "npz",
            A,
            zip(&[("arr_0.npy", &n)]),
            CRIT,
            Critical,
        );
    }
    add(
        "joblib-sklearn",
        "joblib",
        S,
        b"\x80\x04cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81csklearn.tree\nDecisionTreeClassifier\n)\x81\x86.".to_vec(),
        "pickle.global.unknown",
        High,
    );
    // Keras.
    {
        let cfg = br#"{"class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda", "config": {"function": ["4wEAAAAAAAAA", null, null]}}]}}"#;
        add(
            "keras-lambda",
            "keras",
            A,
            zip(&[
                ("metadata.json", b"{}"),
                ("config.json", cfg),
                ("model.weights.h5", b"\x89HDF\r\n\x1a\n"),
            ]),
            "keras.lambda",
            High,
        );
        let mut h5 = b"\x89HDF\r\n\x1a\n".to_vec();
        h5.extend_from_slice(&[0u8; 200]);
        h5.extend_from_slice(b"model_config\0");
        h5.extend_from_slice(cfg);
        h5.extend_from_slice(&[0u8; 100]);
        add("h5-lambda", "h5", A, h5, "keras.lambda", High);
    }
    // safetensors.
    {
        let hdr = r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
        let mut poly = safetensors_raw(hdr, &[0u8; 4]);
        poly.extend(p4_call("os", "system", "id"));
        add(
            "safetensors-trailing",
            "safetensors",
            A,
            poly.clone(),
            "safetensors.trailing-bytes",
            High,
        );
        add(
            "safetensors-trailing-pickle",
            "safetensors",
            A,
            poly,
            CRIT,
            Critical,
        );
        let dup = r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
        add(
            "safetensors-duplicate",
            "safetensors",
            S,
            safetensors_raw(dup, &[0u8; 4]),
            "safetensors.duplicate-key",
            High,
        );
        let gap = r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
        add(
            "safetensors-invalid",
            "safetensors",
            S,
            safetensors_raw(gap, &[0u8; 8]),
            "safetensors.invalid",
            Medium,
        );
    }
    add(
        "onnx-escape",
        "onnx",
        A,
        onnx_external("../../../etc/passwd"),
        "onnx.external-data-escape",
        High,
    );
    add(
        "onnx-absolute",
        "onnx",
        A,
        onnx_external("/etc/shadow"),
        "onnx.external-data-escape",
        High,
    );
    add(
        "torchscript",
        "pt",
        S,
        std::fs::read(fixture("torchscript.pt")).expect("tests/fixtures/torchscript.pt"),
        "torchscript.code",
        High,
    );
    {
        let mut nested = zip(&[("payload.pkl", &evil)]);
        for i in 0..12 {
            nested = zip(&[(if i % 2 == 0 { "a.zip" } else { "b.zip" }, &nested)]);
        }
        add("limit-depth", "zip", A, nested, "limit.depth", Medium);
    }
    // tests/corpus.rs extension_is_ignored: a pickle named as safetensors, a
    // torch zip named as text.
    add(
        "disguised-pickle-as-safetensors",
        "safetensors",
        A,
        p0_call("os", "system", "id"),
        CRIT,
        Critical,
    );
    add(
        "disguised-torch-zip-as-txt",
        "txt",
        A,
        torch_zip(&p4_call("subprocess", "run", "id")),
        CRIT,
        Critical,
    );
    v
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn main() {
    let out =
        std::path::PathBuf::from(std::env::args().nth(1).expect("usage: dump_corpus OUT_DIR"));
    std::fs::create_dir_all(&out).expect("create OUT_DIR");
    let mut manifest = Vec::new();
    let mut bad = 0;
    for it in items() {
        let file = format!("{}.{}", it.names[0], it.ext);
        std::fs::write(out.join(&file), &it.data).expect("write");
        // Guard against drift from tests/corpus.rs.
        let r = scan_bytes(&file, &it.data, &ScanOptions::new());
        for (name, (rule, sev)) in it.names.iter().zip(&it.rules) {
            if !r
                .findings
                .iter()
                .any(|f| f.rule == *rule && f.severity >= *sev)
            {
                let _ = writeln!(
                    std::io::stderr(),
                    "{name}: expected {rule} ({sev}) not found"
                );
                bad += 1;
            }
        }
        manifest.push(serde_json::json!({
            "file": file,
            "cases": it.names,
            "rules": it.rules.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
            "label": it.label,
        }));
    }
    std::fs::write(
        out.join("manifest.json"),
        serde_json::to_string_pretty(&manifest).unwrap(),
    )
    .expect("write manifest");
    let _ = writeln!(
        std::io::stdout(),
        "{} files in {}",
        manifest.len(),
        out.display()
    );
    if bad > 0 {
        std::process::exit(1);
    }
}
