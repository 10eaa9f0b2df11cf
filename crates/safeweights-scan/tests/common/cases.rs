//! The crafted technique corpus, one table for `tests/corpus.rs` (which
//! checks every case) and `examples/dump_corpus.rs` (which writes the cases
//! to disk for `bench/scan.py`). Included by both with `#[path]`, next to
//! `common/mod.rs`, whose byte builders it uses. Everything here *writes*
//! bytes; nothing is ever unpickled or executed.

use crate::common::*;

use safeweights_scan::{Limits, Policy, ScanOptions, Severity};

/// One crafted file and the finding it must produce.
pub struct Case {
    pub name: &'static str,
    pub data: Vec<u8>,
    pub rule: &'static str,
    pub severity: Severity,
    pub member: Option<&'static str>,
    pub opts: ScanOptions,
}

pub fn case(name: &'static str, data: Vec<u8>, rule: &'static str, severity: Severity) -> Case {
    Case {
        name,
        data,
        rule,
        severity,
        member: None,
        opts: ScanOptions::new(),
    }
}

/// The corpus, in order: one case per technique (several cases may share
/// the same bytes, each checking one of its findings).
pub fn cases() -> Vec<Case> {
    use Severity::*;
    let evil = p0_call("os", "system", "echo pwned");
    let mut v = vec![
        case(
            "p0-os-system",
            evil.clone(),
            "pickle.global.critical",
            Critical,
        ),
        case(
            "p2-posix-system",
            {
                let mut p = vec![0x80, 0x02];
                p.extend_from_slice(
                    b"cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.",
                );
                p
            },
            "pickle.global.critical",
            Critical,
        ),
        case(
            "p4-stack-global-subprocess",
            p4_call("subprocess", "Popen", "id"),
            "pickle.global.critical",
            Critical,
        ),
        case(
            "p1-inst",
            b"(S'id'\nios\nsystem\n.".to_vec(),
            "pickle.global.critical",
            Critical,
        ),
        case(
            "p1-obj-exec",
            b"(cbuiltins\nexec\nS'print(1)'\no.".to_vec(),
            "pickle.global.critical",
            Critical,
        ),
        case(
            "p2-newobj-unknown",
            b"\x80\x02csklearn.linear_model\nLogisticRegression\n)\x81}b.".to_vec(),
            "pickle.global.unknown",
            High,
        ),
        case(
            "p4-dotted-pathlib-os-system",
            p4_call("pathlib", "os.system", "id"),
            "pickle.global.critical",
            Critical,
        ),
        case(
            "p4-dotted-torch-os-system",
            p4_call("torch.serialization", "os.system", "id"),
            "pickle.global.critical",
            Critical,
        ),
        case(
            "p4-torch-load",
            p4_call("torch", "load", "x.pt"),
            "pickle.global.critical",
            Critical,
        ),
        case(
            "p4-numpy-load",
            p4_call("numpy", "load", "x.npy"),
            "pickle.global.critical",
            Critical,
        ),
        case(
            "p4-runpy",
            p4_call("runpy", "run_path", "x.py"),
            "pickle.global.critical",
            Critical,
        ),
        case(
            "p4-pty-spawn",
            p4_call("pty", "spawn", "sh"),
            "pickle.global.critical",
            Critical,
        ),
        case(
            "p4-webbrowser",
            p4_call("webbrowser", "open", "http://x"),
            "pickle.global.critical",
            Critical,
        ),
        case(
            "p4-pickle-loads",
            p4_call("pickle", "loads", "x"),
            "pickle.global.critical",
            Critical,
        ),
        case(
            "p4-attrgetter",
            p4_call("operator", "attrgetter", "x"),
            "pickle.global.critical",
            Critical,
        ),
        case(
            "p4-partial",
            p4_call("functools", "partial", "x"),
            "pickle.global.critical",
            Critical,
        ),
        case(
            "p4-ctypes",
            p4_call("ctypes", "CDLL", "libc.so.6"),
            "pickle.global.critical",
            Critical,
        ),
        case(
            "p4-code",
            p4_call("code", "interact", "x"),
            "pickle.global.critical",
            Critical,
        ),
        case(
            "p4-socket",
            p4_call("socket", "create_connection", "x"),
            "pickle.global.critical",
            Critical,
        ),
        case(
            "p4-sys",
            p4_call("sys", "exit", "x"),
            "pickle.global.critical",
            Critical,
        ),
        case(
            "p4-unknown",
            p4_call("evilpkg.payload", "run", "x"),
            "pickle.global.unknown",
            High,
        ),
    ];
    // Memoized strings: module/name stored in the memo and fetched by BINGET.
    {
        let mut p = vec![0x80, 0x02];
        p.extend_from_slice(b"X\x02\x00\x00\x00osq\x05X\x06\x00\x00\x00systemq\x06");
        p.extend_from_slice(b"0"); // POP the name
        p.extend_from_slice(b"0"); // POP the module
        p.extend_from_slice(b"h\x05h\x06\x93X\x02\x00\x00\x00id\x85R.");
        v.push(case(
            "memo-strings-stack-global",
            p,
            "pickle.global.critical",
            Critical,
        ));
    }
    // Memoized global: GLOBAL, PUT, POP, then GET + REDUCE.
    v.push(case(
        "memo-global",
        b"\x80\x02cbuiltins\neval\nq\x010h\x01X\x01\x00\x00\x001\x85R.".to_vec(),
        "pickle.global.critical",
        Critical,
    ));
    // getattr(__import__('os'), 'system')('id')
    {
        let mut p = vec![0x80, 0x02];
        p.extend_from_slice(b"cbuiltins\ngetattr\n");
        p.extend_from_slice(b"cbuiltins\n__import__\nX\x02\x00\x00\x00os\x85R");
        p.extend_from_slice(b"X\x06\x00\x00\x00system\x86R");
        p.extend_from_slice(b"X\x02\x00\x00\x00id\x85R.");
        let mut c = case(
            "getattr-import-chain",
            p,
            "pickle.global.critical",
            Critical,
        );
        c.member = None;
        v.push(c);
    }
    // Benign pickle followed by a malicious one.
    {
        let mut p = benign_p2();
        p.extend(p4_call("os", "system", "id"));
        v.push(case(
            "benign-then-malicious",
            p,
            "pickle.global.critical",
            Critical,
        ));
    }
    // Dangerous call followed by garbage: both found.
    {
        let mut p = evil.clone();
        p.extend_from_slice(b"\xff\xff\xff garbage");
        v.push(case(
            "malicious-then-garbage",
            p.clone(),
            "pickle.global.critical",
            Critical,
        ));
        v.push(case(
            "malicious-then-garbage-malformed",
            p,
            "pickle.malformed",
            Medium,
        ));
    }
    v.push(case(
        "truncated",
        b"\x80\x02}q\x00X\x05\x00\x00\x00ab".to_vec(),
        "pickle.malformed",
        Medium,
    ));
    v.push(case(
        "build-on-global",
        b"\x80\x02cos\nenviron\n}X\x01\x00\x00\x00aX\x01\x00\x00\x00bsb.".to_vec(),
        "pickle.build.global",
        High,
    ));
    v.push(case(
        "ext1",
        b"\x80\x02\x82\x01)R.".to_vec(),
        "pickle.ext",
        High,
    ));
    v.push(case(
        "stack-global-unresolved",
        b"\x80\x04cbuiltins\nstr\n)RX\x01\x00\x00\x00x\x93.".to_vec(),
        "pickle.global.unresolved",
        High,
    ));
    v.push(case(
        "reduce-non-global",
        b"\x80\x02X\x01\x00\x00\x00x)R.".to_vec(),
        "pickle.call.unresolved",
        High,
    ));
    // PyTorch zip with a malicious data.pkl, read with PyTorch's first-entry prefix.
    {
        let mut c = case(
            "torch-zip-malicious",
            torch_zip(&p4_call("os", "system", "id")),
            "pickle.global.critical",
            Critical,
        );
        c.member = Some("archive/data.pkl");
        v.push(c);
    }
    // Zip anomalies.
    {
        let mut bad = m("archive/data.pkl", &benign_p2());
        bad.crc = Some(0xdead_beef);
        let mut c = case(
            "zip-bad-crc",
            zip_with(&[bad, m("archive/version", b"3")], &[]),
            "zip.crc-mismatch",
            Medium,
        );
        c.member = Some("archive/data.pkl");
        v.push(c);

        let mut enc = m("weights.bin", b"xxxx");
        enc.flags = 1;
        v.push(case(
            "zip-encrypted",
            zip_with(&[enc], &[]),
            "zip.encrypted",
            Medium,
        ));

        let mut odd = m("weights.bin", b"xxxx");
        odd.flags = 0x2000;
        v.push(case(
            "zip-odd-flags",
            zip_with(&[odd], &[]),
            "zip.flags",
            Medium,
        ));

        let mut ln = m("archive/data.pkl", &benign_p2());
        ln.local_name = Some("archive/other.pkl".into());
        v.push(case(
            "zip-name-mismatch",
            zip_with(&[ln], &[]),
            "zip.header-mismatch",
            Medium,
        ));

        let mut sz = m("archive/data.pkl", &benign_p2());
        sz.central_size = Some(3);
        v.push(case(
            "zip-size-mismatch",
            zip_with(&[sz], &[]),
            "zip.header-mismatch",
            Medium,
        ));

        v.push(case(
            "zip-duplicate",
            zip(&[
                ("archive/data.pkl", &benign_p2()),
                ("archive/data.pkl", &p4_call("os", "system", "id")),
            ]),
            "zip.duplicate-name",
            Medium,
        ));
        v.push(case(
            "zip-duplicate-second-scanned",
            zip(&[
                ("archive/data.pkl", &benign_p2()),
                ("archive/data.pkl", &p4_call("os", "system", "id")),
            ]),
            "pickle.global.critical",
            Critical,
        ));
        v.push(case(
            "zip-overlap",
            zip_overlapping(&p4_call("os", "system", "id")),
            "zip.overlap",
            Medium,
        ));
        v.push(case(
            "zip-overlap-hidden-pickle",
            zip_overlapping(&p4_call("os", "system", "id")),
            "pickle.global.critical",
            Critical,
        ));
        v.push(case(
            "zip-prefix-data",
            zip_with(
                &[m("archive/data.pkl", &p4_call("os", "system", "id"))],
                b"MZ junk before the archive",
            ),
            "zip.prefix-data",
            Medium,
        ));
        v.push(case(
            "zip-traversal",
            zip(&[("../../etc/cron.d/x", b"* * * * * root id")]),
            "zip.path-traversal",
            Medium,
        ));
        let mut defl = m("payload.pkl", &p0_call("subprocess", "call", "id"));
        defl.deflate = true;
        v.push(case(
            "zip-deflated-member",
            zip_with(&[defl], &[]),
            "pickle.global.critical",
            Critical,
        ));
    }
    // Containers: zip in tar in zip; tar.gz; 7z.
    {
        let inner = zip(&[("payload.pkl", &evil)]);
        let t = tar(&[("models/inner.zip", &inner)]);
        let outer = zip(&[("bundle.tar", &t)]);
        let mut c = case("zip-tar-zip", outer, "pickle.global.critical", Critical);
        c.member = Some("bundle.tar!models/inner.zip!payload.pkl");
        v.push(c);
        v.push(case(
            "tar-gz",
            gzip(&tar(&[("model.pt", &torch_zip(&evil))])),
            "pickle.global.critical",
            Critical,
        ));
        v.push(case(
            "gzip-pickle",
            gzip(&evil),
            "pickle.global.critical",
            Critical,
        ));
        let mut sz = b"7z\xbc\xaf\x27\x1c\x00\x04".to_vec();
        sz.extend_from_slice(&[0u8; 32]);
        v.push(case("7z", sz, "archive.cannot-inspect", Medium));
        let mut t2 = Vec::new();
        tar_entry(&mut t2, "../evil.pkl", &evil, b'0', "");
        tar_entry(&mut t2, "link", b"", b'2', "/etc/passwd");
        t2.extend_from_slice(&[0u8; 1024]);
        v.push(case("tar-traversal", t2, "tar.path-traversal", Medium));
    }
    // NumPy object arrays.
    {
        let n = npy("|O", &p4_call("os", "system", "id"));
        v.push(case("npy-object", n.clone(), "npy.object-array", Low));
        v.push(case(
            "npy-object-pickle",
            n.clone(),
            "pickle.global.critical",
            Critical,
        ));
        v.push(case(
            "npz-object-pickle",
            zip(&[("arr_0.npy", &n)]),
            "pickle.global.critical",
            Critical,
        ));
    }
    // joblib: the wrapper marks the format, sklearn globals are unknown imports.
    v.push(case(
        "joblib-sklearn",
        b"\x80\x04cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81csklearn.tree\nDecisionTreeClassifier\n)\x81\x86.".to_vec(),
        "pickle.global.unknown",
        High,
    ));
    // Keras: .keras zip and .h5.
    {
        let cfg = br#"{"class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda", "config": {"function": ["4wEAAAAAAAAA", null, null]}}]}}"#;
        v.push(case(
            "keras-lambda",
            zip(&[
                ("metadata.json", b"{}"),
                ("config.json", cfg),
                ("model.weights.h5", b"\x89HDF\r\n\x1a\n"),
            ]),
            "keras.lambda",
            High,
        ));
        let mut h5 = b"\x89HDF\r\n\x1a\n".to_vec();
        h5.extend_from_slice(&[0u8; 200]);
        h5.extend_from_slice(b"model_config\0");
        h5.extend_from_slice(cfg);
        h5.extend_from_slice(&[0u8; 100]);
        v.push(case("h5-lambda", h5, "keras.lambda", High));
    }
    // safetensors.
    {
        let hdr = r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
        let mut poly = safetensors_raw(hdr, &[0u8; 4]);
        poly.extend(p4_call("os", "system", "id"));
        v.push(case(
            "safetensors-trailing",
            poly.clone(),
            "safetensors.trailing-bytes",
            High,
        ));
        v.push(case(
            "safetensors-trailing-pickle",
            poly,
            "pickle.global.critical",
            Critical,
        ));
        let dup = r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
        v.push(case(
            "safetensors-duplicate",
            safetensors_raw(dup, &[0u8; 4]),
            "safetensors.duplicate-key",
            High,
        ));
        let gap = r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
        v.push(case(
            "safetensors-invalid",
            safetensors_raw(gap, &[0u8; 8]),
            "safetensors.invalid",
            Medium,
        ));
    }
    v.push(case(
        "onnx-escape",
        onnx_external("../../../etc/passwd"),
        "onnx.external-data-escape",
        High,
    ));
    v.push(case(
        "onnx-absolute",
        onnx_external("/etc/shadow"),
        "onnx.external-data-escape",
        High,
    ));
    // TorchScript (real file from torch.jit.save).
    v.push(case(
        "torchscript",
        std::fs::read(fixture("torchscript.pt")).unwrap(),
        "torchscript.code",
        High,
    ));
    // Limits.
    {
        let mut nested = zip(&[("payload.pkl", &evil)]);
        for i in 0..12 {
            nested = zip(&[(if i % 2 == 0 { "a.zip" } else { "b.zip" }, &nested)]);
        }
        v.push(case("limit-depth", nested, "limit.depth", Medium));
        let many: Vec<(String, Vec<u8>)> = (0..20)
            .map(|i| (format!("f{i}.pkl"), benign_p2()))
            .collect();
        let refs: Vec<(&str, &[u8])> = many
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        let mut c = case("limit-members", zip(&refs), "limit.members", Medium);
        c.opts = ScanOptions::new().limits(Limits {
            max_members: 5,
            ..Limits::default()
        });
        v.push(c);
        let bomb = gzip(&vec![0u8; 4 << 20]);
        let mut c = case("limit-expanded", bomb, "limit.expanded-size", Medium);
        c.opts = ScanOptions::new().limits(Limits {
            max_expanded_bytes: 1 << 20,
            ..Limits::default()
        });
        v.push(c);
        let mut zb = m("zeros.pkl", &vec![b'N'; 4 << 20]);
        zb.deflate = true;
        let mut c = case(
            "limit-expanded-zip",
            zip_with(&[zb], &[]),
            "limit.expanded-size",
            Medium,
        );
        c.opts = ScanOptions::new().limits(Limits {
            max_expanded_bytes: 1 << 20,
            ..Limits::default()
        });
        v.push(c);
    }
    // Policy.
    {
        let mut c = case(
            "policy-torch",
            torch_zip(&benign_p2()),
            "policy.not-safetensors",
            High,
        );
        c.opts = ScanOptions::new().policy(Policy::SafetensorsOnly);
        v.push(c);
        let mut c = case(
            "policy-gguf",
            b"GGUF\x03\x00\x00\x00".to_vec(),
            "policy.not-safetensors",
            High,
        );
        c.opts = ScanOptions::new().policy(Policy::SafetensorsOnly);
        v.push(c);
    }
    v
}

/// The files of `tests/corpus.rs` `extension_is_ignored`: a pickle named as
/// safetensors, a PyTorch zip named as text. Each must be found critical.
pub fn disguised() -> Vec<Case> {
    use Severity::*;
    vec![
        case(
            "disguised-pickle-as-safetensors",
            p0_call("os", "system", "id"),
            "pickle.global.critical",
            Critical,
        ),
        case(
            "disguised-torch-zip-as-txt",
            torch_zip(&p4_call("subprocess", "run", "id")),
            "pickle.global.critical",
            Critical,
        ),
    ]
}

pub fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}
