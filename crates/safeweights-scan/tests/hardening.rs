//! Regression tests of issue 21 ("Hardening: the scanner and path safety"),
//! the pickle side of "Scanner gaps": one test (or more) per item, each
//! failing before its fix. Every file here is crafted byte by byte, or is a
//! real checkpoint written by torch/joblib/transformers
//! (`tests/fixtures/gen_benign.py`); nothing is ever unpickled.
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.

mod common;
use common::*;

use safeweights_scan::{exit_code, scan_bytes, scan_file, Format, Report, ScanOptions, Severity};

fn scan(data: &[u8]) -> Report {
    scan_bytes("t.bin", data, &ScanOptions::new())
}

fn dump(r: &Report) -> String {
    safeweights_scan::render_human(r, &Default::default())
}

/// The highest severity of findings of `rule`, if any.
fn worst(r: &Report, rule: &str) -> Option<Severity> {
    r.findings
        .iter()
        .filter(|f| f.rule == rule)
        .map(|f| f.severity)
        .max()
}

#[track_caller]
fn assert_rule(r: &Report, rule: &str, at_least: Severity) {
    assert!(
        worst(r, rule).is_some_and(|s| s >= at_least),
        "expected {rule} >= {at_least}:\n{}",
        dump(r)
    );
}

#[track_caller]
fn assert_at_most(r: &Report, max: Severity) {
    assert!(
        r.findings.iter().all(|f| f.severity <= max),
        "expected nothing above {max}:\n{}",
        dump(r)
    );
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

// ---------- 1. FRAME boundaries ----------

/// `PROTO 4; FRAME n` where the frame ends inside the argument of
/// `GLOBAL 'os system'`: CPython's C unpickler reads straight on and calls
/// `os.system`; a frame-by-frame reader stops at the frame end.
fn frame_crossing_pickle() -> Vec<u8> {
    let body = b"cos\nsystem\n(S'id'\ntR.";
    let mut p = vec![0x80, 4, 0x95];
    p.extend_from_slice(&4u64.to_le_bytes()); // the frame holds "cos\n" only
    p.extend_from_slice(body);
    p
}

#[test]
fn issue21_frame_crossing_opcode_is_walked_as_cpython_and_reported() {
    let r = scan(&frame_crossing_pickle());
    assert_rule(&r, "pickle.global.critical", Severity::Critical);
    assert_rule(&r, "pickle.frame", Severity::High);
    assert!(r
        .findings
        .iter()
        .any(|f| f.rule == "pickle.frame" && f.offset == Some(11)));
    // A new FRAME before the current one ends is the same disagreement.
    let mut p = vec![0x80, 4, 0x95];
    p.extend_from_slice(&11u64.to_le_bytes());
    p.push(0x95);
    p.extend_from_slice(&1u64.to_le_bytes());
    p.extend_from_slice(b"N.");
    assert_rule(&scan(&p), "pickle.frame", Severity::High);
    // What CPython itself writes is clean.
    let mut ok = vec![0x80, 4, 0x95];
    ok.extend_from_slice(&2u64.to_le_bytes());
    ok.extend_from_slice(b"N.");
    assert_eq!(worst(&scan(&ok), "pickle.frame"), None);
}

// ---------- 2. PyTorch archive consistency ----------

/// `{'w': _rebuild_tensor_v2(pid('storage', FloatStorage, '0', 'cpu', numel),
/// offset, size, stride, False, OrderedDict())}` (protocol 2, as torch.save
/// writes it), with `tail` inserted after the tensor's REDUCE.
fn tensor_pickle(numel: u8, offset: u8, size: &[u8], stride: &[u8], tail: &[u8]) -> Vec<u8> {
    let tuple = |xs: &[u8]| {
        let mut t = vec![b'('];
        for x in xs {
            t.extend_from_slice(&[b'K', *x]);
        }
        t.push(b't');
        t
    };
    let mut p = b"\x80\x02}X\x01\x00\x00\x00w".to_vec();
    p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n(");
    p.extend_from_slice(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\n");
    p.extend_from_slice(b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK");
    p.extend_from_slice(&[numel, b't', b'Q', b'K', offset]);
    p.extend(tuple(size));
    p.extend(tuple(stride));
    p.extend_from_slice(b"\x89ccollections\nOrderedDict\n)RtR");
    p.extend_from_slice(tail);
    p.extend_from_slice(b"s.");
    p
}

fn torch_zip_with(pickle: &[u8], record: usize) -> Vec<u8> {
    zip(&[
        ("archive/data.pkl", pickle),
        ("archive/byteorder", b"little"),
        ("archive/data/0", &vec![0u8; record]),
        ("archive/version", b"3\n"),
    ])
}

#[test]
fn issue21_torch_consistent_archive_is_clean() {
    // 16 floats = 64 bytes; a 4x4 view.
    let r = scan(&torch_zip_with(
        &tensor_pickle(16, 0, &[4, 4], &[4, 1], b""),
        64,
    ));
    assert_at_most(&r, Severity::Info);
    let r = scan_file(fixture("torch_zip.pt"), &ScanOptions::new());
    assert_at_most(&r, Severity::Info);
}

#[test]
fn issue21_torch_storage_size_disagrees_with_its_record() {
    // Declared 16 floats (64 bytes), the record holds 32.
    let r = scan(&torch_zip_with(&tensor_pickle(16, 0, &[4], &[1], b""), 32));
    assert_rule(&r, "torch.storage-size", Severity::High);
    // A record that is missing altogether.
    let p = tensor_pickle(16, 0, &[4], &[1], b"");
    let r = scan(&zip(&[
        ("archive/data.pkl", &p),
        ("archive/version", b"3\n"),
    ]));
    assert_rule(&r, "torch.storage-size", Severity::High);
}

#[test]
fn issue21_torch_view_past_its_storage() {
    // 16 elements, but a 4x4 view with row stride 8 reaches element 27.
    let r = scan(&torch_zip_with(
        &tensor_pickle(16, 0, &[4, 4], &[8, 1], b""),
        64,
    ));
    assert_rule(&r, "torch.view-bounds", Severity::High);
    // An offset past the end.
    let r = scan(&torch_zip_with(&tensor_pickle(16, 16, &[1], &[1], b""), 64));
    assert_rule(&r, "torch.view-bounds", Severity::High);
    // The same in a bare (legacy-style) pickle.
    let r = scan(&tensor_pickle(16, 0, &[17], &[1], b""));
    assert_rule(&r, "torch.view-bounds", Severity::High);
}

#[test]
fn issue21_setitem_and_build_on_tensors_and_storages() {
    // BUILD on the rebuilt tensor: Tensor.__setstate__ -> set_(storage, offset, size, stride).
    let r = scan(&torch_zip_with(
        &tensor_pickle(16, 0, &[4], &[1], b"(K\x00K\x00K\x00K\x00tb"),
        64,
    ));
    assert_rule(&r, "torch.tensor-mutation", Severity::Critical);
    // SETITEM on the tensor.
    let r = scan(&torch_zip_with(
        &tensor_pickle(16, 0, &[4], &[1], b"K\x00K\x07s"),
        64,
    ));
    assert_rule(&r, "torch.tensor-mutation", Severity::High);
    // SETITEM on a storage straight from its persistent id.
    let p = b"\x80\x02(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x10tQK\x00K\x01s.";
    let r = scan(&torch_zip_with(p, 64));
    assert_rule(&r, "torch.tensor-mutation", Severity::High);
}

// ---------- 3. Python 2 names ----------

#[test]
fn issue21_protocol_0_to_2_use_the_python2_name_mapping() {
    // `__builtin__` is `builtins`: eval is critical whatever the protocol.
    let r = scan(b"c__builtin__\neval\n(S'1'\ntR.");
    assert_rule(&r, "pickle.global.critical", Severity::Critical);
    // `thread` is `_thread` (a process primitive) only through the mapping.
    let r = scan(b"cthread\nstart_new_thread\n(S'x'\ntR.");
    assert_rule(&r, "pickle.global.critical", Severity::Critical);
    assert!(r
        .findings
        .iter()
        .any(|f| f.what.contains("_thread.start_new_thread")));
    // `SocketServer` is `socketserver`, `commands` is `subprocess`.
    let r = scan(b"\x80\x02cSocketServer\nTCPServer\n.");
    assert_rule(&r, "pickle.global.critical", Severity::Critical);
    let r = scan(b"ccommands\ngetoutput\n(S'id'\ntR.");
    assert!(
        r.findings
            .iter()
            .any(|f| f.what.contains("subprocess.getoutput")),
        "{}",
        dump(&r)
    );
    // Python 2 data types map to allowlisted ones: `unicode` is `str`,
    // `copy_reg._reconstructor` is `copyreg._reconstructor`.
    let r = scan(b"c__builtin__\nunicode\n(S'x'\ntR.");
    assert_at_most(&r, Severity::Info);
    let r = scan(b"\x80\x02c__builtin__\nxrange\nK\x03\x85R.");
    assert_at_most(&r, Severity::Info);
    // Protocol 3+ pickles are not mapped (CPython does not): an unknown import.
    let r = scan(b"\x80\x03c__builtin__\nunicode\n.");
    assert_rule(&r, "pickle.global.unknown", Severity::High);
}

// ---------- 4. joblib: compressed streams and inline arrays ----------

#[test]
fn issue21_benign_joblib_files_scan_clean() {
    for name in [
        "arrays.joblib",
        "arrays.joblib.zlib",
        "arrays.joblib.gzip",
        "arrays.joblib.bz2",
        "arrays.joblib.lzma",
        "arrays.joblib.xz",
    ] {
        let r = scan_file(fixture(&format!("benign/{name}")), &ScanOptions::new());
        assert!(r.errors.is_empty(), "{name}");
        assert_at_most(&r, Severity::Info);
        assert!(
            r.files.iter().any(|f| f.format == Format::Joblib),
            "{name}: no joblib content found\n{:?}",
            r.files
        );
    }
    let r = scan_file(fixture("benign/legacy.joblib.zf"), &ScanOptions::new());
    assert_at_most(&r, Severity::Info);
    assert_eq!(r.files.len(), 2, "{:?}", r.files);
}

fn zlib(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(3));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn issue21_compressed_joblib_streams_are_opened() {
    let evil = p0_call("os", "system", "echo pwned");
    let mut bz = Vec::new();
    {
        use std::io::Write;
        let mut e = bzip2::write::BzEncoder::new(&mut bz, bzip2::Compression::new(3));
        e.write_all(&evil).unwrap();
        e.finish().unwrap();
    }
    let mut xz = Vec::new();
    lzma_rs::xz_compress(&mut &evil[..], &mut xz).unwrap();
    let mut lz = Vec::new();
    lzma_rs::lzma_compress(&mut &evil[..], &mut lz).unwrap();
    let mut zf = b"ZF".to_vec();
    zf.extend_from_slice(format!("{:<19}", format!("{:#x}", evil.len())).as_bytes());
    zf.extend(zlib(&evil));
    for (name, data, member) in [
        ("zlib", zlib(&evil), "<zlib>"),
        ("bzip2", bz, "<bzip2>"),
        ("xz", xz, "<xz>"),
        ("lzma", lz, "<lzma>"),
        ("zf", zf, "<joblib-zf>"),
        ("gzip", gzip(&evil), "<gunzip>"),
    ] {
        let r = scan(&data);
        assert!(
            r.findings
                .iter()
                .any(|f| f.rule == "pickle.global.critical" && f.member.as_deref() == Some(member)),
            "{name}:\n{}",
            dump(&r)
        );
    }
    // A broken stream is a finding, a bomb stops at the limit.
    let mut xz = Vec::new();
    lzma_rs::xz_compress(&mut &evil[..], &mut xz).unwrap();
    xz.truncate(xz.len() / 2);
    assert_rule(&scan(&xz), "compressed.malformed", Severity::Medium);
    let bomb = zlib(&vec![0u8; 4 << 20]);
    let opts = ScanOptions::new().limits(safeweights_scan::Limits {
        max_expanded_bytes: 1 << 20,
        ..Default::default()
    });
    let r = scan_bytes("bomb", &bomb, &opts);
    assert_rule(&r, "limit.expanded-size", Severity::Medium);
}

/// A joblib stream: a `NumpyArrayWrapper` for an array of `dtype` and
/// `shape`, followed by `inline` bytes (what `write_array` writes), then
/// `rest` (more opcodes) and STOP.
fn joblib_stream(dtype: &str, shape: u8, aligned: bool, inline: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut p = b"\x80\x04".to_vec();
    p.extend(sbu("joblib.numpy_pickle"));
    p.extend(sbu("NumpyArrayWrapper"));
    p.extend_from_slice(b"\x93)\x81}(");
    p.extend(sbu("subclass"));
    p.extend(sbu("numpy"));
    p.extend(sbu("ndarray"));
    p.push(0x93);
    p.extend(sbu("shape"));
    p.extend_from_slice(&[b'K', shape, 0x85]);
    p.extend(sbu("order"));
    p.extend(sbu("C"));
    p.extend(sbu("dtype"));
    p.extend(sbu("numpy"));
    p.extend(sbu("dtype"));
    p.push(0x93);
    p.extend(sbu(dtype));
    p.extend_from_slice(b"\x89\x88\x87R(K\x03");
    p.extend(sbu("<"));
    p.extend_from_slice(b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb");
    if aligned {
        p.extend(sbu("numpy_array_alignment_bytes"));
        p.extend_from_slice(b"K\x10");
    }
    p.extend_from_slice(b"ub");
    p.extend_from_slice(inline);
    p.extend_from_slice(rest);
    p.push(b'.');
    p
}

#[test]
fn issue21_joblib_inline_arrays_are_read_as_joblib_writes_them() {
    // 3 float64 values after an alignment byte (2) and its padding.
    let mut inline = vec![2, 0xff, 0xff];
    inline.extend_from_slice(&[0x63; 24]); // array bytes that look like GLOBAL opcodes
    let r = scan(&joblib_stream("f8", 3, true, &inline, b""));
    assert_at_most(&r, Severity::Info);
    assert_eq!(r.files[0].format, Format::Joblib);
    // Without alignment (older joblib, compressed files).
    let r = scan(&joblib_stream("i4", 3, false, &[0u8; 12], b""));
    assert_at_most(&r, Severity::Info);
    // Opcodes after the array are still walked.
    let mut rest = b"0".to_vec();
    rest.extend_from_slice(b"cos\nsystem\n(S'id'\ntR");
    let r = scan(&joblib_stream("i4", 3, false, &[0u8; 12], &rest));
    assert_rule(&r, "pickle.global.critical", Severity::Critical);
    // An array that runs past the end is malformed, not silently clean.
    let r = scan(&joblib_stream("f8", 200, false, &[0u8; 12], b""));
    assert_rule(&r, "pickle.malformed", Severity::Medium);
    // Array bytes that a plain `pickle.load` of the same file reads as
    // opcodes (joblib reads them as data): judged as both read them.
    let evil = p0_call("os", "system", "id");
    let r = scan(&joblib_stream("u1", evil.len() as u8, false, &evil, b""));
    assert!(
        r.findings
            .iter()
            .any(|f| f.severity == Severity::Critical && f.what.contains("plain unpickler")),
        "{}",
        dump(&r)
    );
    // Object arrays are a nested pickle: walked, and judged.
    let nested = p0_call("os", "system", "id");
    let r = scan(&joblib_stream("O8", 1, false, &nested, b""));
    assert_rule(&r, "pickle.global.critical", Severity::Critical);
}

// ---------- 5. No false alarms on ordinary checkpoints ----------

#[test]
fn issue21_benign_checkpoint_corpus_scans_clean() {
    let dir = fixture("benign");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    assert!(names.len() >= 11, "{names:?}");
    for name in &names {
        let r = scan_file(dir.join(name), &ScanOptions::new());
        assert!(r.errors.is_empty(), "{name}: {:?}", r.errors);
        assert_eq!(exit_code(&r, Severity::Medium), 0, "{name}:\n{}", dump(&r));
    }
    // The settings and data constructors are named, at low.
    let r = scan_file(dir.join("training_args.bin"), &ScanOptions::new());
    assert_rule(&r, "pickle.global.harmless", Severity::Low);
    assert!(r.findings.iter().any(|f| f
        .what
        .contains("transformers.training_args.TrainingArguments")));
    let r = scan_file(dir.join("lightning.ckpt"), &ScanOptions::new());
    for g in [
        "pathlib.PosixPath",
        "datetime.datetime",
        "datetime.timedelta",
        "argparse.Namespace",
    ] {
        assert!(r.findings.iter().any(|f| f.what.contains(g)), "{g}");
    }
}

#[test]
fn issue21_harmless_module_dangerous_callable_stays_critical() {
    for (m, n) in [
        ("pathlib", "Path.write_text"),
        ("pathlib", "PosixPath.write_bytes"),
        ("pathlib", "os.system"),
        ("pathlib", "Path.unlink"),
        ("argparse", "_sys.exit"),
        ("argparse", "_os.system"),
        ("datetime", "sys.modules"),
        ("posix", "system"),
        ("os", "system"),
    ] {
        let r = scan(&p4_call(m, n, "x"));
        assert_rule(&r, "pickle.global.critical", Severity::Critical);
    }
    // getattr(PosixPath, "write_text"): the method, not the class.
    let mut p =
        b"\x80\x02cbuiltins\ngetattr\ncpathlib\nPosixPath\nX\x0a\x00\x00\x00write_text\x86R."
            .to_vec();
    let r = scan(&p);
    assert!(
        r.findings
            .iter()
            .any(|f| f.severity == Severity::Critical && f.what.contains("PosixPath.write_text")),
        "{}",
        dump(&r)
    );
    // While the constructors alone are low.
    p = p4_call("pathlib", "PosixPath", "/data");
    let r = scan(&p);
    assert_rule(&r, "pickle.global.harmless", Severity::Low);
    assert_at_most(&r, Severity::Low);
    for (m, n) in [
        ("argparse", "Namespace"),
        ("datetime", "datetime"),
        ("datetime", "date"),
        ("datetime", "timedelta"),
        ("datetime", "timezone"),
        ("pathlib", "WindowsPath"),
        ("pathlib", "PurePosixPath"),
    ] {
        assert_at_most(&scan(&p4_call(m, n, "x")), Severity::Low);
    }
    // A settings dataclass is data as pickle writes it (NEWOBJ + state),
    // but calling it runs its __init__ with the file's arguments.
    let r = scan(&p4_call(
        "transformers.training_args",
        "TrainingArguments",
        "/tmp/out",
    ));
    assert_rule(&r, "pickle.global.unknown", Severity::High);
    let newobj =
        b"\x80\x02ctransformers.training_args\nTrainingArguments\n)\x81}X\x02\x00\x00\x00lrG?\x1a6\xe2\xeb\x1cC-sb.";
    assert_at_most(&scan(newobj), Severity::Low);
}

// ---------- 6. Advisories of 2025-2026 ----------

#[test]
fn issue21_advisory_globals_are_critical() {
    let cases: &[(&str, &str)] = &[
        ("_interpreters", "run_string"),
        ("_xxsubinterpreters", "run_string"),
        ("_xxsubinterpreters", "create"),
        ("interpreters", "create"),
        ("ensurepip", "_run_pip"),
        ("ensurepip", "bootstrap"),
        ("pkgutil", "resolve_name"),
        ("cProfile", "run"),
        ("profile", "run"),
        ("trace", "Trace.runctx"),
        ("test.support.script_helper", "assert_python_ok"),
        ("test.support.script_helper", "run_python_until_end"),
        ("uuid", "_get_command_stdout"),
        ("_osx_support", "_read_output"),
        ("_osx_support", "_find_build_tool"),
        ("_aix_support", "_read_cmd_output"),
        ("_pyrepl.pager", "pipe_pager"),
        ("_pyrepl.console", "InteractiveColoredConsole"),
        ("imaplib", "IMAP4_stream"),
        ("picklescan.scanner", "scan_pickle_bytes"),
        ("modelscan.modelscan", "ModelScan"),
        ("fickling.fickle", "Pickled"),
        ("modelaudit.core", "scan_model_directory_or_file"),
        ("safeweights", "load_file"),
        ("pickle", "_loads"),
        ("pickle", "_Unpickler"),
        ("pickle", "loads"),
        ("_pickle", "loads"),
        ("copyreg", "add_extension"),
        ("pydoc", "locate"),
        ("pydoc", "pipepager"),
        ("idlelib.pyshell", "ModifiedInterpreter"),
        ("doctest", "debug_script"),
        ("logging.config", "_resolve"),
        ("atexit", "register"),
        ("platform", "_syscmd_file"),
        ("operator", "call"),
        ("numpy.f2py.crackfortran", "myeval"),
        ("torch.jit.unsupported_tensor_ops", "execWrapper"),
        ("torch.utils.collect_env", "run"),
        ("torch.utils.bottleneck.__main__", "run_cprofile"),
        ("torch._inductor.codecache", "compile_file"),
        (
            "torch.fx.experimental.symbolic_shapes",
            "ShapeEnv.evaluate_guards_expression",
        ),
    ];
    let mut missed = Vec::new();
    for (m, n) in cases {
        for p in [p4_call(m, n, "x"), p0_call(m, n, "x")] {
            let r = scan(&p);
            if worst(&r, "pickle.global.critical") != Some(Severity::Critical) {
                missed.push(format!("{m}.{n}:\n{}", dump(&r)));
            }
        }
    }
    assert!(missed.is_empty(), "{}", missed.join("\n"));
}

#[test]
fn issue21_ext_registry_targets_are_flagged() {
    // EXT1 with nothing registered: the standard registry is empty, the
    // target is whatever the loading process registered: flagged.
    for ext in [&b"\x82\x01"[..], b"\x83\x01\x01", b"\x84\x01\x00\x00\x01"] {
        let mut p = b"\x80\x02".to_vec();
        p.extend_from_slice(ext);
        p.extend_from_slice(b"(S'id'\ntR.");
        assert_rule(&scan(&p), "pickle.ext", Severity::High);
    }
    // A first pickle registers os.system as code 7, a second loads it by
    // EXT1: resolved through the registry to os.system.
    let mut p =
        b"\x80\x02ccopyreg\nadd_extension\n(X\x02\x00\x00\x00osX\x06\x00\x00\x00systemK\x07tR."
            .to_vec();
    p.extend_from_slice(b"\x80\x02\x82\x07(X\x02\x00\x00\x00idtR.");
    let r = scan(&p);
    assert_rule(&r, "pickle.ext", Severity::High);
    assert!(
        r.findings.iter().any(|f| f.rule == "pickle.global.critical"
            && f.what.contains("os.system")
            && f.what.contains("EXT1")),
        "{}",
        dump(&r)
    );
}
