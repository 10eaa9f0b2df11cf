//! Judging pickle globals: allowlist, critical list, everything else unknown.

/// The verdict on one `module.name` global.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// On the checkpoint allowlist.
    Safe,
    /// A known dangerous primitive; the string names the category and the
    /// dotted name it resolved to.
    Critical {
        category: &'static str,
        resolved: String,
    },
    /// Not on the allowlist, but a constructor of plain data (a path, a
    /// date, a namespace, a library's settings class): building one runs no
    /// code of the file's choosing.
    Harmless(Harmless),
    /// Anything else.
    Unknown,
}

/// What a harmless constructor builds, and how it may be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Harmless {
    /// What it builds ("a date/time value").
    pub builds: &'static str,
    /// Whether calling it with the file's arguments (`REDUCE`, `OBJ`,
    /// `INST`) is harmless too. Plain data types and enums: yes. Settings
    /// dataclasses: no, their `__init__`/`__post_init__` act on the
    /// arguments (set up devices, read config files); pickle writes them as
    /// `NEWOBJ` (`__new__`, then the state), which is harmless.
    pub call_ok: bool,
}

/// Constructors of plain data that training checkpoints pickle next to the
/// weights (Lightning hyper-parameters, fairseq `args`, Hugging Face
/// `training_args.bin`). Exact `module.name` only: any attribute reached
/// through them (`pathlib.Path.write_text`) is judged as what it is.
const HARMLESS_EXACT: &[(&str, &str, bool)] = &[
    ("argparse.Namespace", "an argparse namespace", true),
    ("types.SimpleNamespace", "a simple namespace", true),
    ("pathlib.Path", "a path value (no file is touched)", true),
    (
        "pathlib.PosixPath",
        "a path value (no file is touched)",
        true,
    ),
    (
        "pathlib.WindowsPath",
        "a path value (no file is touched)",
        true,
    ),
    (
        "pathlib.PurePath",
        "a path value (no file is touched)",
        true,
    ),
    (
        "pathlib.PurePosixPath",
        "a path value (no file is touched)",
        true,
    ),
    (
        "pathlib.PureWindowsPath",
        "a path value (no file is touched)",
        true,
    ),
    (
        "pathlib._local.Path",
        "a path value (no file is touched)",
        true,
    ),
    (
        "pathlib._local.PosixPath",
        "a path value (no file is touched)",
        true,
    ),
    (
        "pathlib._local.WindowsPath",
        "a path value (no file is touched)",
        true,
    ),
    (
        "pathlib._local.PurePath",
        "a path value (no file is touched)",
        true,
    ),
    (
        "pathlib._local.PurePosixPath",
        "a path value (no file is touched)",
        true,
    ),
    (
        "pathlib._local.PureWindowsPath",
        "a path value (no file is touched)",
        true,
    ),
    ("datetime.datetime", "a date/time value", true),
    ("datetime.date", "a date/time value", true),
    ("datetime.time", "a date/time value", true),
    ("datetime.timedelta", "a date/time value", true),
    ("datetime.timezone", "a date/time value", true),
    ("decimal.Decimal", "a number", true),
    ("fractions.Fraction", "a number", true),
    ("uuid.UUID", "a UUID value", true),
    ("collections.Counter", "a container", true),
    ("collections.deque", "a container", true),
    ("collections.ChainMap", "a container", true),
    // Hugging Face Trainer's training_args.bin: the dataclass and its enums.
    (
        "transformers.training_args.TrainingArguments",
        "a settings class",
        false,
    ),
    (
        "transformers.training_args_seq2seq.Seq2SeqTrainingArguments",
        "a settings class",
        false,
    ),
    (
        "transformers.training_args.OptimizerNames",
        "a settings enum",
        true,
    ),
    (
        "transformers.trainer_utils.IntervalStrategy",
        "a settings enum",
        true,
    ),
    (
        "transformers.trainer_utils.SaveStrategy",
        "a settings enum",
        true,
    ),
    (
        "transformers.trainer_utils.SchedulerType",
        "a settings enum",
        true,
    ),
    (
        "transformers.trainer_utils.HubStrategy",
        "a settings enum",
        true,
    ),
    (
        "transformers.trainer_utils.FSDPOption",
        "a settings enum",
        true,
    ),
    (
        "transformers.debug_utils.DebugOption",
        "a settings enum",
        true,
    ),
    (
        "transformers.training_args.ParallelMode",
        "a settings enum",
        true,
    ),
    (
        "transformers.generation.configuration_utils.GenerationConfig",
        "a settings class",
        false,
    ),
    (
        "accelerate.utils.dataclasses.DistributedType",
        "a settings enum",
        true,
    ),
    ("accelerate.state.PartialState", "a settings class", false),
    (
        "accelerate.utils.dataclasses.AcceleratorConfig",
        "a settings class",
        false,
    ),
    // Lightning hyper-parameters.
    (
        "pytorch_lightning.utilities.parsing.AttributeDict",
        "a settings dict",
        true,
    ),
    (
        "lightning.pytorch.utilities.parsing.AttributeDict",
        "a settings dict",
        true,
    ),
    (
        "lightning.fabric.utilities.data.AttributeDict",
        "a settings dict",
        true,
    ),
    (
        "lightning_fabric.utilities.data.AttributeDict",
        "a settings dict",
        true,
    ),
];

/// A harmless constructor: what it builds.
fn harmless(full: &str) -> Option<Harmless> {
    HARMLESS_EXACT
        .iter()
        .find(|(n, _, _)| *n == full)
        .map(|&(_, builds, call_ok)| Harmless { builds, call_ok })
}

/// Python 2 names as CPython's `find_class` maps them for protocol 0-2
/// pickles (`_compat_pickle`): `__builtin__.xrange` is `builtins.range`,
/// `commands.getoutput` is `subprocess.getoutput`. `None` when unmapped.
pub(crate) fn py2_mapping(module: &str, name: &str) -> Option<(&'static str, String)> {
    use crate::compat::{IMPORT_MAPPING, NAME_MAPPING};
    if let Some((_, (m, n))) = NAME_MAPPING
        .iter()
        .find(|((m, n), _)| *m == module && *n == name)
    {
        return Some((m, n.to_string()));
    }
    IMPORT_MAPPING
        .iter()
        .find(|(m, _)| *m == module)
        .map(|(_, m)| (*m, name.to_string()))
}

/// Exactly what `torch.save` / `numpy.save` / plain containers emit.
const SAFE_EXACT: &[&str] = &[
    "collections.OrderedDict",
    "collections.defaultdict",
    "torch.Size",
    "torch.device",
    "torch._utils._rebuild_tensor",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor_v3",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
    "torch._utils._rebuild_qtensor",
    "torch._utils._rebuild_sparse_tensor",
    "torch._utils._rebuild_sparse_csr",
    "torch._utils._rebuild_meta_tensor_no_storage",
    "torch._utils._rebuild_device_tensor_from_numpy",
    "torch._utils._rebuild_nested_tensor",
    "torch._utils._rebuild_wrapper_subclass",
    "torch._tensor._rebuild_from_type_v2",
    "torch._tensor._rebuild_from_type",
    "torch.nn.parameter.Parameter",
    "torch.nn.Parameter",
    "torch.Tensor",
    "torch._tensor.Tensor",
    "torch.storage.UntypedStorage",
    "torch.storage.TypedStorage",
    "torch.storage._TypedStorage",
    "torch.UntypedStorage",
    "torch.serialization._get_layout",
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.ndarray",
    "numpy.dtype",
    "numpy.core.numeric._frombuffer",
    "numpy._core.numeric._frombuffer",
    "_codecs.encode",
    "copyreg._reconstructor",
    "copy_reg._reconstructor",
    "joblib.numpy_pickle.NumpyArrayWrapper",
    "joblib.numpy_pickle_compat.NDArrayWrapper",
];

/// Plain data builtins (`builtins.` or Python 2 `__builtin__.`).
const SAFE_BUILTINS: &[&str] = &[
    "set",
    "frozenset",
    "bytearray",
    "bytes",
    "slice",
    "complex",
    "dict",
    "list",
    "tuple",
    "int",
    "float",
    "str",
    "bool",
    "range",
    "object",
];

/// `torch.<name>` attributes that are plain values: dtypes, storages,
/// layouts, memory formats, qschemes.
fn is_torch_value(name: &str) -> bool {
    const DTYPES: &[&str] = &[
        "float32",
        "float",
        "float64",
        "double",
        "float16",
        "half",
        "bfloat16",
        "complex32",
        "chalf",
        "complex64",
        "complex128",
        "cfloat",
        "cdouble",
        "uint8",
        "int8",
        "int16",
        "short",
        "int32",
        "int",
        "int64",
        "long",
        "bool",
        "uint16",
        "uint32",
        "uint64",
        "quint8",
        "qint8",
        "qint32",
        "quint4x2",
        "quint2x4",
        "float8_e4m3fn",
        "float8_e5m2",
        "float8_e4m3fnuz",
        "float8_e5m2fnuz",
        "float8_e8m0fnu",
        "float4_e2m1fn_x2",
        "strided",
        "sparse_coo",
        "sparse_csr",
        "sparse_csc",
        "sparse_bsr",
        "sparse_bsc",
        "_mkldnn",
        "contiguous_format",
        "channels_last",
        "channels_last_3d",
        "preserve_format",
        "per_tensor_affine",
        "per_channel_affine",
        "per_tensor_symmetric",
        "per_channel_symmetric",
        "per_channel_affine_float_qparams",
    ];
    DTYPES.contains(&name) || is_storage_class(name)
}

/// `<Name>Storage`: a storage class of `torch` or `torch.cuda`.
fn is_storage_class(name: &str) -> bool {
    name.ends_with("Storage") && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The typed tensor classes of `torch` and `torch.cuda` (`torch.FloatTensor`,
/// `torch.cuda.LongTensor`, ...) that legacy (tar) checkpoints name as inert types.
const LEGACY_TENSOR_TYPES: &[&str] = &[
    "DoubleTensor",
    "FloatTensor",
    "HalfTensor",
    "BFloat16Tensor",
    "LongTensor",
    "IntTensor",
    "ShortTensor",
    "CharTensor",
    "ByteTensor",
    "BoolTensor",
    "ComplexDoubleTensor",
    "ComplexFloatTensor",
    "QUInt8Tensor",
    "QInt8Tensor",
    "QInt32Tensor",
    "QUInt4x2Tensor",
    "QUInt2x4Tensor",
];

/// Modules every member of which is treated as critical.
const CRITICAL_MODULES: &[(&str, &str)] = &[
    ("os", "process/file"),
    ("posix", "process/file"),
    ("nt", "process/file"),
    ("subprocess", "process"),
    ("_posixsubprocess", "process"),
    ("pty", "process"),
    ("commands", "process"),
    ("popen2", "process"),
    ("multiprocessing", "process"),
    ("signal", "process"),
    ("_thread", "process"),
    ("threading", "process"),
    ("asyncio", "process/network"),
    ("sys", "interpreter"),
    ("runpy", "code execution"),
    ("code", "code execution"),
    ("codeop", "code execution"),
    ("importlib", "code execution"),
    ("imp", "code execution"),
    ("zipimport", "code execution"),
    ("pkgutil", "code execution"),
    ("types", "code execution"),
    ("marshal", "code execution"),
    ("ctypes", "native code"),
    ("_ctypes", "native code"),
    ("cffi", "native code"),
    ("pdb", "code execution"),
    ("bdb", "code execution"),
    ("timeit", "code execution"),
    ("trace", "code execution"),
    ("cProfile", "code execution"),
    ("profile", "code execution"),
    ("pickle", "nested unpickling"),
    ("_pickle", "nested unpickling"),
    ("cPickle", "nested unpickling"),
    ("dill", "nested unpickling"),
    ("cloudpickle", "nested unpickling"),
    ("shelve", "nested unpickling"),
    ("jsonpickle", "nested unpickling"),
    ("socket", "network"),
    ("_socket", "network"),
    ("ssl", "network"),
    ("http", "network"),
    ("urllib", "network"),
    ("urllib2", "network"),
    ("httplib", "network"),
    ("requests", "network"),
    ("ftplib", "network"),
    ("smtplib", "network"),
    ("telnetlib", "network"),
    ("xmlrpc", "network"),
    ("webbrowser", "network/process"),
    ("shutil", "file"),
    ("tempfile", "file"),
    ("pathlib", "file"),
    ("glob", "file"),
    ("io", "file"),
    ("_io", "file"),
    ("fileinput", "file"),
    ("linecache", "file"),
    ("pip", "code execution"),
    ("setuptools", "code execution"),
    ("distutils", "code execution"),
    ("venv", "code execution"),
    // 2025-2026 scanner advisories (picklescan, fickling, ModelAudit).
    ("_interpreters", "code execution (subinterpreter)"),
    ("_xxsubinterpreters", "code execution (subinterpreter)"),
    ("interpreters", "code execution (subinterpreter)"),
    ("concurrent.interpreters", "code execution (subinterpreter)"),
    ("_interpchannels", "code execution (subinterpreter)"),
    ("_xxinterpchannels", "code execution (subinterpreter)"),
    ("_interpqueues", "code execution (subinterpreter)"),
    ("ensurepip", "code execution (runs pip)"),
    ("test.support", "code execution (test helpers run scripts)"),
    (
        "test.libregrtest",
        "code execution (test helpers run scripts)",
    ),
    ("_osx_support", "process"),
    ("_aix_support", "process"),
    ("_pyrepl", "code execution"),
    ("idlelib", "code execution"),
    ("lib2to3", "code execution"),
    ("pydoc", "code execution (name lookup, pager commands)"),
    ("doctest", "code execution"),
    ("site", "code execution"),
    ("atexit", "code execution (deferred call)"),
    ("gc", "interpreter"),
    ("copyreg", "pickle machinery (extension registry, reducers)"),
    (
        "copy_reg",
        "pickle machinery (extension registry, reducers)",
    ),
    (
        "logging.config",
        "code execution (resolves and calls named objects)",
    ),
    ("mailcap", "process"),
    ("socketserver", "network"),
    ("SocketServer", "network"),
    ("imaplib", "network/process"),
    ("poplib", "network"),
    ("nntplib", "network"),
    ("smtpd", "network"),
    ("asyncore", "network"),
    ("asynchat", "network"),
    ("zipfile", "file"),
    ("tarfile", "file"),
    ("mmap", "file"),
    ("fcntl", "file"),
    ("numpy.f2py", "code execution"),
    ("numpy.distutils", "code execution"),
    ("numpy.testing._private", "code execution"),
    ("torch.hub", "network/code execution"),
    ("torch.utils.cpp_extension", "native code"),
    (
        "torch.utils.bottleneck",
        "code execution (profiler runs a script)",
    ),
    ("torch.utils.collect_env", "process"),
    ("torch._inductor.codecache", "native code"),
    ("torch.testing._internal", "code execution"),
    ("torch.distributed.rpc", "network/code execution"),
    // A pickle that imports a scanner's own modules aims at the scanner.
    ("picklescan", "scanner internals"),
    ("modelscan", "scanner internals"),
    ("fickling", "scanner internals"),
    ("modelaudit", "scanner internals"),
    ("safeweights", "scanner internals"),
    ("safeweights_scan", "scanner internals"),
];

/// Exact `module.name` globals that are critical although their module is not.
const CRITICAL_EXACT: &[(&str, &str)] = &[
    ("operator.attrgetter", "attribute access"),
    ("operator.methodcaller", "method call"),
    ("_operator.attrgetter", "attribute access"),
    ("_operator.methodcaller", "method call"),
    ("functools.partial", "call wrapper"),
    ("functools.reduce", "call wrapper"),
    ("_functools.partial", "call wrapper"),
    ("_functools.reduce", "call wrapper"),
    ("torch.load", "nested unpickling"),
    ("torch.serialization.load", "nested unpickling"),
    ("torch.storage._load_from_bytes", "nested unpickling"),
    ("torch.jit.load", "nested program load"),
    ("torch.hub.load", "network/code execution"),
    ("torch.hub.load_state_dict_from_url", "network"),
    ("torch.hub.download_url_to_file", "network/file"),
    ("torch._C._jit_compile", "code execution"),
    ("torch.utils.cpp_extension.load", "native code"),
    ("torch.utils.cpp_extension.load_inline", "native code"),
    ("torch.ops.load_library", "native code"),
    ("numpy.load", "nested unpickling (allow_pickle)"),
    ("numpy.lib.npyio.load", "nested unpickling (allow_pickle)"),
    ("numpy.fromfile", "file"),
    ("numpy.save", "file"),
    ("numpy.savetxt", "file"),
    ("numpy.loadtxt", "file"),
    ("numpy.testing._private.utils.runstring", "code execution"),
    ("numpy.f2py.compile", "code execution"),
    ("numpy.ctypeslib.load_library", "native code"),
    ("joblib.load", "nested unpickling"),
    ("pandas.read_pickle", "nested unpickling"),
    ("yaml.load", "code execution"),
    ("yaml.unsafe_load", "code execution"),
    ("yaml.full_load", "code execution"),
    ("operator.call", "call wrapper"),
    ("_operator.call", "call wrapper"),
    ("itertools.starmap", "call wrapper"),
    ("uuid._get_command_stdout", "process"),
    ("uuid._popen", "process"),
    ("platform._syscmd_file", "process"),
    ("platform._syscmd_ver", "process"),
    ("platform._syscmd_uname", "process"),
    ("platform.popen", "process"),
    ("platform.architecture", "process"),
    ("imaplib.IMAP4_stream", "process"),
    ("gzip.open", "file"),
    ("gzip.GzipFile", "file"),
    ("bz2.open", "file"),
    ("bz2.BZ2File", "file"),
    ("lzma.open", "file"),
    ("lzma.LZMAFile", "file"),
    (
        "torch.jit.unsupported_tensor_ops.execWrapper",
        "code execution",
    ),
    (
        "torch.fx.experimental.symbolic_shapes.ShapeEnv.evaluate_guards_expression",
        "code execution",
    ),
    ("torch._dynamo.guards.GuardBuilder", "code execution"),
    (
        "torch.utils.data.datapipes.utils.decoder.basichandlers",
        "nested unpickling",
    ),
    ("torch.serialization._load", "nested unpickling"),
    (
        "numpy.lib.format.read_array",
        "nested unpickling (allow_pickle)",
    ),
    ("pandas.io.pickle.read_pickle", "nested unpickling"),
    ("joblib.numpy_pickle.load", "nested unpickling"),
    ("dbm.open", "file"),
    ("sqlite3.connect", "file"),
];

/// Builtins that execute code or touch files.
const CRITICAL_BUILTINS: &[&str] = &[
    "eval",
    "exec",
    "execfile",
    "compile",
    "__import__",
    "getattr",
    "setattr",
    "delattr",
    "open",
    "file",
    "input",
    "raw_input",
    "breakpoint",
    "globals",
    "locals",
    "vars",
    "apply",
    "reload",
    "help",
    "memoryview",
    "__build_class__",
    "exit",
    "quit",
];

fn module_matches(dotted: &str, module: &str) -> bool {
    dotted == module
        || (dotted.len() > module.len()
            && dotted.starts_with(module)
            && dotted.as_bytes()[module.len()] == b'.')
}

/// Judges one candidate dotted name (no per-component resolution).
fn judge_dotted(dotted: &str) -> Option<&'static str> {
    for (exact, cat) in CRITICAL_EXACT {
        if dotted == *exact || module_matches(dotted, exact) {
            return Some(cat);
        }
    }
    for (m, cat) in CRITICAL_MODULES {
        if module_matches(dotted, m) {
            return Some(cat);
        }
    }
    for b in ["builtins", "__builtin__", "__builtins__"] {
        if let Some(rest) = dotted.strip_prefix(b).and_then(|r| r.strip_prefix('.')) {
            let first = rest.split('.').next().unwrap_or(rest);
            if CRITICAL_BUILTINS.contains(&first) {
                return Some("code execution");
            }
        }
    }
    None
}

fn is_safe(module: &str, name: &str) -> bool {
    let full = format!("{module}.{name}");
    if SAFE_EXACT.contains(&full.as_str()) {
        return true;
    }
    if (module == "builtins" || module == "__builtin__") && SAFE_BUILTINS.contains(&name) {
        return true;
    }
    match module {
        "torch" => is_torch_value(name) || LEGACY_TENSOR_TYPES.contains(&name),
        "torch.cuda" => is_storage_class(name) || LEGACY_TENSOR_TYPES.contains(&name),
        _ => false,
    }
}

/// Judges the global `module` / `name` as `find_class` would resolve it:
/// the module is imported, then each dot-separated component of `name` is
/// an attribute lookup, so `pathlib` + `os.system` is `os.system`.
pub(crate) fn judge(module: &str, name: &str) -> Verdict {
    if name == "*" {
        // A whole module (from `__import__("mod")`).
        return match judge_dotted(module) {
            Some(category) => Verdict::Critical {
                category,
                resolved: module.to_string(),
            },
            None => Verdict::Unknown,
        };
    }
    if is_safe(module, name) {
        return Verdict::Safe;
    }
    let full = format!("{module}.{name}");
    if let Some(what) = harmless(&full) {
        return Verdict::Harmless(what);
    }
    if let Some(category) = judge_dotted(&full) {
        // Show the most specific resolution (`pathlib.os.system` is `os.system`).
        let comps: Vec<&str> = name.split('.').collect();
        let resolved = (0..comps.len().saturating_sub(1))
            .map(|i| comps[i..].join("."))
            .find(|s| judge_dotted(s).is_some())
            .unwrap_or(full);
        return Verdict::Critical { category, resolved };
    }
    // Per-component resolution: an attribute component of `name` may be a
    // module re-exported by the imported one (`pathlib.os`, `torch.serialization.os`).
    let comps: Vec<&str> = name.split('.').collect();
    for i in 0..comps.len() {
        let suffix = comps[i..].join(".");
        // `import sys as _sys` re-exports: `argparse._sys.exit` is `sys.exit`.
        if let Some(alias) = suffix.strip_prefix('_').filter(|_| comps.len() - i > 1) {
            let top = alias.split('.').next().unwrap_or(alias);
            if CRITICAL_MODULES.iter().any(|(m, _)| *m == top) {
                if let Some(category) = judge_dotted(alias) {
                    return Verdict::Critical {
                        category,
                        resolved: alias.to_string(),
                    };
                }
            }
        }
        if let Some(category) = judge_dotted(&suffix) {
            // A suffix that is only a bare builtin name is not a module path.
            if comps.len() - i == 1 && !CRITICAL_MODULES.iter().any(|(m, _)| *m == suffix) {
                continue;
            }
            return Verdict::Critical {
                category,
                resolved: suffix,
            };
        }
    }
    // Builtins reached through an attribute (`torch.__builtins__.eval` style).
    if comps.len() > 1 {
        if let Some(last) = comps.last() {
            if comps[..comps.len() - 1]
                .iter()
                .any(|c| *c == "builtins" || *c == "__builtins__" || *c == "__builtin__")
                && CRITICAL_BUILTINS.contains(last)
            {
                return Verdict::Critical {
                    category: "code execution",
                    resolved: format!("builtins.{last}"),
                };
            }
        }
    }
    Verdict::Unknown
}

/// Whether `module.name` is one of the import functions whose string
/// argument names a module (`__import__('os')`, `importlib.import_module('os')`).
pub(crate) fn is_import_function(full: &str) -> bool {
    matches!(
        full,
        "builtins.__import__"
            | "__builtin__.__import__"
            | "importlib.import_module"
            | "importlib.__import__"
    )
}

/// Whether `module.name` is `getattr`.
pub(crate) fn is_getattr(full: &str) -> bool {
    matches!(full, "builtins.getattr" | "__builtin__.getattr")
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    /// The Python 2 name tables are CPython's own: checked against the
    /// running Python's `_compat_pickle` when SAFEWEIGHTS_PYTHON is set.
    #[test]
    fn py2_tables_match_python() {
        use crate::compat::{IMPORT_MAPPING, NAME_MAPPING};
        let Some(py) = std::env::var_os("SAFEWEIGHTS_PYTHON") else {
            return;
        };
        let code = "import _compat_pickle as c, json; print(json.dumps([sorted(c.IMPORT_MAPPING.items()), sorted([list(k) + list(v) for k, v in c.NAME_MAPPING.items()])]))";
        let out = std::process::Command::new(py)
            .args(["-c", code])
            .output()
            .expect("run SAFEWEIGHTS_PYTHON");
        assert!(out.status.success());
        let (imports, names): (Vec<(String, String)>, Vec<[String; 4]>) =
            serde_json::from_slice(&out.stdout).unwrap();
        let ours: Vec<(String, String)> = IMPORT_MAPPING
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(ours, imports);
        let ours: Vec<[String; 4]> = NAME_MAPPING
            .iter()
            .map(|((a, b), (c, d))| [a, b, c, d].map(|s| s.to_string()))
            .collect();
        assert_eq!(ours, names);
        assert_eq!(
            py2_mapping("__builtin__", "eval"),
            Some(("builtins", "eval".into()))
        );
        assert_eq!(
            py2_mapping("__builtin__", "xrange"),
            Some(("builtins", "range".into()))
        );
        assert_eq!(py2_mapping("torch", "FloatStorage"), None);
    }

    #[test]
    fn harmless_constructors_only_exactly() {
        assert!(matches!(
            judge("pathlib", "PosixPath"),
            Verdict::Harmless(_)
        ));
        assert!(matches!(
            judge("argparse", "Namespace"),
            Verdict::Harmless(_)
        ));
        assert!(crit("pathlib", "PosixPath.write_text"));
        assert!(crit("pathlib", "Path.open"));
        assert!(crit("argparse", "_sys.exit"));
        assert_eq!(judge("datetime", "datetime.now"), Verdict::Unknown);
    }

    fn crit(m: &str, n: &str) -> bool {
        matches!(judge(m, n), Verdict::Critical { .. })
    }

    #[test]
    fn verdicts() {
        assert_eq!(judge("torch._utils", "_rebuild_tensor_v2"), Verdict::Safe);
        assert_eq!(judge("torch", "FloatStorage"), Verdict::Safe);
        assert_eq!(judge("torch", "bfloat16"), Verdict::Safe);
        assert_eq!(judge("collections", "OrderedDict"), Verdict::Safe);
        assert!(crit("os", "system"));
        assert!(crit("posix", "system"));
        assert!(crit("nt", "system"));
        assert!(crit("subprocess", "Popen"));
        assert!(crit("builtins", "eval"));
        assert!(crit("__builtin__", "exec"));
        assert!(crit("builtins", "getattr"));
        assert!(crit("operator", "attrgetter"));
        assert!(crit("functools", "partial"));
        assert!(crit("torch", "load"));
        assert!(crit("numpy", "load"));
        assert!(crit("runpy", "run_path"));
        assert!(crit("pty", "spawn"));
        assert!(crit("socket", "create_connection"));
        assert!(crit("webbrowser", "open"));
        assert!(crit("importlib", "import_module"));
        assert!(crit("pickle", "loads"));
        assert!(crit("ctypes", "CDLL"));
        assert!(crit("sys", "modules"));
        assert!(crit("code", "InteractiveInterpreter"));
        assert!(crit("shutil", "rmtree"));
        // per-component resolution
        match judge("pathlib", "os.system") {
            Verdict::Critical { resolved, .. } => assert_eq!(resolved, "os.system"),
            v => panic!("{v:?}"),
        }
        match judge("torch.serialization", "os.system") {
            Verdict::Critical { resolved, .. } => assert_eq!(resolved, "os.system"),
            v => panic!("{v:?}"),
        }
        assert!(crit("mymodule", "__builtins__.eval"));
        assert_eq!(judge("builtins", "print"), Verdict::Unknown);
        assert_eq!(
            judge("sklearn.linear_model", "LogisticRegression"),
            Verdict::Unknown
        );
        assert_eq!(judge("mypkg.code", "Thing"), Verdict::Unknown);
        assert_eq!(judge("builtins", "set"), Verdict::Safe);
        assert_eq!(judge("torch.cuda", "HalfStorage"), Verdict::Safe);
        assert_eq!(judge("torch.cuda", "LongTensor"), Verdict::Safe);
        assert_eq!(judge("torch", "FloatTensor"), Verdict::Safe);
        assert_eq!(judge("torch.nn", "Parameter"), Verdict::Safe);
        assert_eq!(judge("torch", "chalf"), Verdict::Safe);
        assert_eq!(judge("torch._tensor", "Tensor"), Verdict::Safe);
        assert_eq!(judge("torch.cuda", "float32"), Verdict::Unknown);
    }
}
