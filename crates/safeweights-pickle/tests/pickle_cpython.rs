//! Pickles produced by the real CPython `pickle` module (protocols 0-5),
//! cross-checked with `pickletools`, plus hostile pickles.
//! Tests needing python3 print a note and pass when it is missing.
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.
#![allow(clippy::print_stderr)]

use safeweights::MemorySource;
use safeweights_pickle::eval::{evaluate, Limits};
use safeweights_pickle::opcodes::{Arg, Opcode, Ops};
use safeweights_pickle::torch::{flatten_graph, to_json, TorchCheckpoint};
use safeweights_pickle::{Error, PickleErrorKind};
use serde_json::Value as J;
use std::process::Command;

/// Run python3 code that prints one JSON document on stdout.
fn py(code: &str) -> Option<J> {
    let out = match Command::new("python3").arg("-c").arg(code).output() {
        Ok(o) => o,
        Err(_) => {
            eprintln!("python3 not available: skipping");
            return None;
        }
    };
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

const TOJSON: &str = r#"
import json, pickle, pickletools, sys, os
def tj(o):
    if isinstance(o, bool) or o is None or isinstance(o, str): return o
    if isinstance(o, int): return o if -2**63 <= o < 2**63 else str(o)
    if isinstance(o, float):
        if o != o: return "NaN"
        if o in (float('inf'), float('-inf')): return "Infinity" if o > 0 else "-Infinity"
        return o
    if isinstance(o, (bytes, bytearray)): return {"bytes_hex": bytes(o).hex()}
    if isinstance(o, (list, tuple, set, frozenset)): return [tj(x) for x in o]
    if isinstance(o, dict): return {str(k): tj(v) for k, v in o.items()}
    raise TypeError(type(o))
"#;

const DATA: &str = r#"
shared = [1, 2]
DATA = {
  "ints": [0, 1, -1, 255, 256, 65535, 65536, -2**31, 2**31 - 1, 2**31, 2**63 - 1, -2**63, 2**64, -2**100, 12345678901234567890123],
  "bools": [True, False, None],
  "floats": [0.0, -1.5, 1e300, 3.141592653589793, float('inf'), float('-inf')],
  "strs": ["", "abc", "caf\u00e9", "\u1234\U0001F600", "back\\slash \\u0041 \"q\" 'q'", "nl\nx", "x" * 300],
  "bytes": [b"", b"\x00\xff", b"y" * 300],
  "ba": bytearray(b"\x01\x02"),
  "tuples": [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), ((1, (2,)),)],
  "sets": [set(), {1}, frozenset([3])],
  "shared": [shared, shared],
  "nested": {"a": {"b": {"c": [1, {"d": 2}]}}},
  1: "int key",
}
"#;

#[test]
fn cpython_protocols_roundtrip() {
    let code = format!(
        "{TOJSON}{DATA}\nprint(json.dumps({{'expected': tj(DATA), 'pickles': [pickle.dumps(DATA, protocol=p).hex() for p in range(6)]}}))"
    );
    let Some(j) = py(&code) else { return };
    let expected = &j["expected"];
    for (proto, p) in j["pickles"].as_array().unwrap().iter().enumerate() {
        let bytes = unhex(p.as_str().unwrap());
        let g = evaluate(&bytes, &Limits::default())
            .unwrap_or_else(|e| panic!("protocol {proto}: {e}"));
        assert_eq!(g.consumed, bytes.len());
        let got = to_json(&g, &g.root, &Limits::default()).unwrap();
        assert_eq!(&got, expected, "protocol {proto}");
    }
}

#[test]
fn opcode_table_matches_pickletools() {
    let Some(j) = py(
        "import json, pickletools\nprint(json.dumps([[o.code.encode('latin-1')[0], o.name, o.proto] for o in pickletools.opcodes]))",
    ) else {
        return;
    };
    let table = j.as_array().unwrap();
    assert_eq!(table.len(), Opcode::ALL.len());
    for row in table {
        let b = row[0].as_u64().unwrap() as u8;
        let op = Opcode::from_byte(b).unwrap_or_else(|| panic!("missing opcode {b:#x}"));
        assert_eq!(op.name(), row[1].as_str().unwrap());
        assert_eq!(u64::from(op.protocol()), row[2].as_u64().unwrap());
        assert_eq!(op.byte(), b);
    }
}

#[test]
fn ops_match_genops_and_continue_after_stop() {
    let code = format!(
        "{TOJSON}{DATA}\nout=[]\nfor p in range(6):\n    b = pickle.dumps(DATA, protocol=p) + pickle.dumps([1, 'x'], protocol=p)\n    ops = []\n    for start in (0, len(pickle.dumps(DATA, protocol=p))):\n        ops += [[pos + start, op.name] for op, arg, pos in pickletools.genops(b[start:])]\n    out.append([b.hex(), ops])\nprint(json.dumps(out))"
    );
    let Some(j) = py(&code) else { return };
    for case in j.as_array().unwrap() {
        let bytes = unhex(case[0].as_str().unwrap());
        let ours: Vec<(u64, &str)> = Ops::new(&bytes)
            .map(|r| r.map(|op| (op.offset, op.opcode.name())).unwrap())
            .collect();
        let theirs: Vec<(u64, &str)> = case[1]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| (x[0].as_u64().unwrap(), x[1].as_str().unwrap()))
            .collect();
        assert_eq!(ours, theirs);
        assert_eq!(ours.iter().filter(|o| o.1 == "STOP").count(), 2);
    }
}

#[test]
fn ops_report_where_parsing_broke() {
    let mut data = b"\x80\x02K\x01.".to_vec();
    data.extend_from_slice(b"K\x02\xff");
    let mut ops = Ops::new(&data);
    let all: Vec<_> = ops.by_ref().collect();
    assert_eq!(all.len(), 5);
    let err = all[4].clone().unwrap_err();
    assert_eq!(err.offset, 7);
    assert_eq!(err.kind, PickleErrorKind::UnknownOpcode(0xff));
    assert!(ops.next().is_none());
    // truncated argument
    let err = Ops::new(b"X\x05\x00\x00\x00ab")
        .last()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.offset, 0);
    assert!(matches!(err.kind, PickleErrorKind::UnexpectedEof { .. }));
}

#[test]
fn protocol0_text_semantics() {
    let ev = |b: &[u8]| {
        let g = evaluate(b, &Limits::default()).unwrap();
        to_json(&g, &g.root, &Limits::default()).unwrap()
    };
    assert_eq!(ev(b"I01\n."), J::Bool(true));
    assert_eq!(ev(b"I00\n."), J::Bool(false));
    assert_eq!(ev(b"I-42\n."), J::from(-42));
    assert_eq!(
        ev(b"L12345678901234567890123L\n."),
        J::from("12345678901234567890123")
    );
    assert_eq!(ev(b"L-5L\n."), J::from(-5));
    assert_eq!(ev(b"I0x10\n."), J::from(16));
    assert_eq!(ev(b"S'a\\x41\\n'\n."), J::from("aA\n"));
    assert_eq!(ev(b"S\"q'\"\n."), J::from("q'"));
    assert_eq!(ev(b"Vcaf\xe9 \\u1234\n."), J::from("caf\u{e9} \u{1234}"));
    assert_eq!(ev(b"F1.5\n."), J::from(1.5));
    assert!(evaluate(b"Sabc\n.", &Limits::default()).is_err());
    assert!(evaluate(b"I012\n.", &Limits::default()).is_err());
    assert!(evaluate(b"\x80\x06.", &Limits::default()).is_err());
    // via CPython protocol 0
    let Some(j) = py("import pickle, json\nprint(json.dumps(pickle.dumps([True, False, 2**70, 'caf\\u00e9\\\\u0041', b'\\x00\\xff'], protocol=0).hex()))") else { return };
    let bytes = unhex(j.as_str().unwrap());
    let g = evaluate(&bytes, &Limits::default()).unwrap();
    let got = to_json(&g, &g.root, &Limits::default()).unwrap();
    assert_eq!(
        got,
        serde_json::json!([true, false, "1180591620717411303424", "caf\u{e9}\\u0041", {"bytes_hex": "00ff"}])
    );
}

fn forbidden(b: &[u8]) -> (u64, String, String) {
    match evaluate(b, &Limits::default()) {
        Err(e) => match e.kind {
            PickleErrorKind::ForbiddenGlobal { module, name } => (e.offset, module, name),
            other => panic!("expected ForbiddenGlobal, got {other:?} at {}", e.offset),
        },
        Ok(g) => panic!("hostile pickle evaluated: {:?}", g.root),
    }
}

#[test]
fn hostile_os_system_all_protocols() {
    let code = "import pickle, os, json, pickletools\nclass E:\n    def __reduce__(self): return (os.system, ('echo pwned',))\nout=[]\nfor p in range(6):\n    b = pickle.dumps(E(), protocol=p)\n    off = [pos for op, a, pos in pickletools.genops(b) if op.name in ('GLOBAL','STACK_GLOBAL')][0]\n    out.append([b.hex(), off])\nprint(json.dumps(out))";
    let Some(j) = py(code) else { return };
    for case in j.as_array().unwrap() {
        let b = unhex(case[0].as_str().unwrap());
        let (off, module, name) = forbidden(&b);
        assert_eq!(off, case[1].as_u64().unwrap());
        assert!(
            module == "posix" || module == "os" || module == "nt",
            "{module}"
        );
        assert_eq!(name, "system");
    }
}

#[test]
fn hostile_handcrafted() {
    // STACK_GLOBAL with memoized strings
    let (off, m, n) =
        forbidden(b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93\x8c\x02ls\x85R.");
    assert_eq!((off, m.as_str(), n.as_str()), (20, "os", "system"));
    // INST
    let (off, m, n) = forbidden(b"(S'ls'\nios\nsystem\n.");
    assert_eq!((off, m.as_str(), n.as_str()), (7, "os", "system"));
    // OBJ
    let (off, m, n) = forbidden(b"(cbuiltins\neval\nS'1'\no.");
    assert_eq!((off, m.as_str(), n.as_str()), (1, "builtins", "eval"));
    // a torch-looking name that is not on the list
    let (_, m, n) = forbidden(b"ctorch\nload\n.");
    assert_eq!((m.as_str(), n.as_str()), ("torch", "load"));
    // extension registry
    let e = evaluate(b"\x80\x02\x82\x01.", &Limits::default()).unwrap_err();
    assert!(matches!(e.kind, PickleErrorKind::Unsupported { .. }));
    // out-of-band buffers
    let e = evaluate(b"\x80\x05\x97.", &Limits::default()).unwrap_err();
    assert!(matches!(e.kind, PickleErrorKind::Unsupported { .. }));
    // text persistent id
    let e = evaluate(b"Pfoo\n.", &Limits::default()).unwrap_err();
    assert!(matches!(e.kind, PickleErrorKind::BadPersistentId(_)));
    // allowed callable with a hostile argument: REDUCE on a non-callable
    let e = evaluate(b"\x80\x02K\x01)R.", &Limits::default()).unwrap_err();
    assert!(matches!(e.kind, PickleErrorKind::TypeMismatch { .. }));
    // backward hooks must be empty: hooks dict with an entry
    let e = evaluate(
        b"\x80\x02ctorch._utils\n_rebuild_parameter\n(]K\x01}K\x01K\x02stR.",
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(e.kind, PickleErrorKind::BadCall { .. }), "{e}");
}

#[test]
fn memo_bombs_and_limits() {
    // exponential DAG via memo: L_{i+1} = [L_i, L_i]; 60 levels = 2^60 leaves if expanded
    let mut b = b"\x80\x02]q\x00".to_vec();
    for i in 0..60u8 {
        b.extend_from_slice(&[b'h', i, b'h', i, 0x86, b'q', i + 1]);
    }
    b.push(b'.');
    let g = evaluate(&b, &Limits::default()).unwrap();
    let e = flatten_graph(&g, &Limits::default()).unwrap_err();
    assert!(matches!(e, Error::LimitExceeded { .. }), "{e}");
    // memo entry limit
    let mut b = b"\x80\x02N".to_vec();
    for i in 0..100u32 {
        b.push(b'r');
        b.extend_from_slice(&i.to_le_bytes());
    }
    b.push(b'.');
    let e = evaluate(&b, &Limits::default().max_memo_entries(50)).unwrap_err();
    assert_eq!(
        e.kind,
        PickleErrorKind::LimitExceeded {
            limit: "max_memo_entries",
            max: 50
        }
    );
    // op limit on a long DUP chain
    let mut b = b"N".to_vec();
    b.extend(std::iter::repeat_n(b'2', 10_000));
    b.push(b'.');
    let e = evaluate(&b, &Limits::default().max_ops(1000)).unwrap_err();
    assert!(matches!(
        e.kind,
        PickleErrorKind::LimitExceeded {
            limit: "max_ops",
            ..
        }
    ));
    // string size limit
    let e = evaluate(b"C\x05hello.", &Limits::default().max_string_bytes(4)).unwrap_err();
    assert!(matches!(
        e.kind,
        PickleErrorKind::LimitExceeded {
            limit: "max_string_bytes",
            ..
        }
    ));
    // marks
    let b: Vec<u8> = std::iter::repeat_n(b'(', 20_000).collect();
    let e = evaluate(&b, &Limits::default()).unwrap_err();
    assert!(matches!(
        e.kind,
        PickleErrorKind::LimitExceeded {
            limit: "max_marks",
            ..
        }
    ));
}

#[test]
fn deep_nesting_does_not_recurse() {
    // 200k nested lists: ] * N then APPEND * (N-1); evaluation is flat, walking is capped
    let n = 200_000;
    let mut b = vec![b']'; n];
    b.extend(std::iter::repeat_n(b'a', n - 1));
    b.push(b'.');
    let g = evaluate(&b, &Limits::default()).unwrap();
    assert!(flatten_graph(&g, &Limits::default()).is_err());
    assert!(to_json(&g, &g.root, &Limits::default()).is_none());
    drop(g); // arena drop is flat
             // nested tuples as dict keys: hashing is depth-capped
    let mut b = b"}".to_vec();
    b.extend(std::iter::repeat_n(b')', 1));
    b.extend(std::iter::repeat_n(0x85u8, 1000));
    b.extend_from_slice(b"Ns.");
    let e = evaluate(&b, &Limits::default()).unwrap_err();
    assert!(matches!(e.kind, PickleErrorKind::LimitExceeded { .. }));
    // a self-containing list (cycle)
    let g = evaluate(b"]q\x00h\x00a.", &Limits::default()).unwrap();
    assert!(flatten_graph(&g, &Limits::default()).is_err());
}

#[test]
fn hostile_pickle_in_torch_zip() {
    let code = "import zipfile, io, json, pickle, os\nclass E:\n    def __reduce__(self): return (os.system, ('echo pwned',))\nb = io.BytesIO()\nwith zipfile.ZipFile(b, 'w') as z:\n    z.writestr('archive/data.pkl', pickle.dumps({'w': E()}, protocol=2))\n    z.writestr('archive/version', '3')\nprint(json.dumps(b.getvalue().hex()))";
    let Some(j) = py(code) else { return };
    let bytes = unhex(j.as_str().unwrap());
    match TorchCheckpoint::from_source(MemorySource::new(bytes), "evil.pt", Limits::default()) {
        Err(Error::Pickle {
            member,
            source,
            file,
        }) => {
            assert_eq!(member.as_deref(), Some("archive/data.pkl"));
            assert_eq!(file.to_str(), Some("evil.pt"));
            assert!(matches!(
                source.kind,
                PickleErrorKind::ForbiddenGlobal { .. }
            ));
            let msg = Error::Pickle {
                member,
                source,
                file,
            }
            .to_string();
            assert!(
                msg.contains("system") && msg.contains("evil.pt") && msg.contains("byte"),
                "{msg}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn numpy_pickles() {
    let exp: J = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/expected.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let exp = &exp["numpy"];
    for p in 2..=5 {
        let path = format!(
            "{}/tests/fixtures/numpy_p{p}.pkl",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(path).unwrap();
        let g = evaluate(&bytes, &Limits::default()).unwrap_or_else(|e| panic!("p{p}: {e}"));
        let f = flatten_graph(&g, &Limits::default()).unwrap();
        let (tensors, arrays, leaves) = (f.tensors, f.arrays, f.leaves);
        assert!(tensors.is_empty());
        assert_eq!(arrays.len(), 5);
        for a in &arrays {
            let e = &exp[&a.name];
            let hex: String = a.array.data.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex, e["bytes"].as_str().unwrap(), "{}", a.name);
            let shape: Vec<u64> = serde_json::from_value(e["shape"].clone()).unwrap();
            assert_eq!(a.array.shape, shape);
            let dt = e["dtype"].as_str().unwrap();
            assert_eq!(
                &dt[1..],
                a.array.dtype.descr.trim_start_matches(['<', '>', '|', '='])
            );
        }
        assert!(arrays
            .iter()
            .any(|a| a.name == "fortran" && a.array.fortran_order));
        assert!(arrays
            .iter()
            .any(|a| a.name == "be" && a.array.dtype.byteorder == '>'));
        assert_eq!(leaves, vec![("scalar".to_string(), J::from(2.5))]);
    }
}

#[test]
fn arg_decoding_details() {
    let ops: Vec<_> = Ops::new(b"\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01\x8a\x01\xff.")
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(matches!(ops[0].arg, Arg::BigInt(_)));
    assert_eq!(ops[1].arg, Arg::Int(-1));
}
