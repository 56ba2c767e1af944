//! What an import in a pickle means: a deny list of callables that run processes, touch
//! files or the network, evaluate code, import modules or reach attributes indirectly;
//! a suspicious list; and an allow list of what real checkpoints use (PyTorch's tensor
//! rebuild helpers and storages, collections, NumPy's array reconstruction). Anything
//! else is reported as unknown, never silently passed.

use serde::Serialize;

/// How bad a finding is; `--fail-on` compares against this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "info" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }
}

/// Modules whose every member is dangerous to import from a model file.
const DENY_MODULES: &[(&str, &str)] = &[
    ("os", "process and file-system access"),
    ("posix", "process and file-system access"),
    ("nt", "process and file-system access"),
    ("subprocess", "runs processes"),
    ("pty", "runs processes"),
    ("commands", "runs processes"),
    ("popen2", "runs processes"),
    ("multiprocessing", "runs processes"),
    ("shutil", "file-system access"),
    ("pathlib", "file-system access"),
    ("tempfile", "file-system access"),
    ("fileinput", "file-system access"),
    ("glob", "file-system access"),
    ("io", "file access"),
    ("socket", "network access"),
    ("ssl", "network access"),
    ("asyncio", "network and process access"),
    ("http", "network access"),
    ("urllib", "network access"),
    ("urllib2", "network access"),
    ("requests", "network access"),
    ("httpx", "network access"),
    ("ftplib", "network access"),
    ("smtplib", "network access"),
    ("telnetlib", "network access"),
    ("webbrowser", "opens URLs"),
    ("runpy", "runs code"),
    ("code", "runs code"),
    ("codeop", "compiles code"),
    ("importlib", "imports modules"),
    ("imp", "imports modules"),
    ("zipimport", "imports modules"),
    ("pkgutil", "imports modules"),
    ("ctypes", "calls native code"),
    ("cffi", "calls native code"),
    ("marshal", "loads code objects"),
    ("pickle", "unpickles more data"),
    ("_pickle", "unpickles more data"),
    ("cPickle", "unpickles more data"),
    ("dill", "unpickles more data"),
    ("shelve", "unpickles more data"),
    ("pdb", "runs code"),
    ("bdb", "runs code"),
    ("timeit", "runs code"),
    ("trace", "runs code"),
    ("sys", "interpreter internals"),
    ("gc", "interpreter internals"),
    ("signal", "process control"),
    ("torch.hub", "downloads and runs code"),
    ("numpy.testing", "runs code (runstring)"),
    // Found in public advisories on pickle-scanner bypasses: standard-library and
    // tool modules whose members run commands, code or installs.
    ("_posixsubprocess", "runs processes"),
    ("_winapi", "runs processes"),
    ("_io", "file access"),
    ("pip", "installs and runs packages"),
    ("ensurepip", "installs and runs packages"),
    ("venv", "runs processes"),
    ("setuptools", "runs code"),
    ("distutils", "runs processes and writes files"),
    ("idlelib", "runs code"),
    ("lib2to3", "runs code"),
    ("profile", "runs code"),
    ("cProfile", "runs code"),
    ("pydoc", "runs processes (pager)"),
    ("doctest", "runs code"),
    ("test.support", "runs code and processes"),
    ("_pyrepl", "runs code and processes"),
    ("_osx_support", "runs processes"),
    ("_aix_support", "runs processes"),
    ("imaplib", "runs processes and network access"),
    ("nntplib", "network access"),
    ("poplib", "network access"),
    ("xmlrpc", "network access"),
    ("logging.config", "evaluates configuration (listens on a socket)"),
    ("site", "runs code"),
    ("sqlite3", "writes files"),
    ("dbm", "writes files"),
    ("mmap", "memory and file access"),
    ("atexit", "runs code at exit"),
    ("_thread", "runs code"),
    ("tkinter", "runs code"),
    ("zipfile", "writes files"),
    ("tarfile", "writes files"),
    ("torch.utils.bottleneck", "runs code"),
    ("torch._dynamo", "runs code"),
    ("torch._inductor", "compiles and runs code"),
    ("torch.jit", "loads and runs TorchScript"),
    ("torch.fx", "evaluates code"),
    ("torch.package", "imports code from the archive"),
    ("torch.distributed", "network access and remote calls"),
    ("numpy.f2py", "evaluates code"),
    ("numpy.distutils", "runs processes"),
];

/// Members of `builtins` that evaluate code, import, open files or reach attributes.
const DENY_BUILTINS: &[&str] = &[
    "eval",
    "exec",
    "execfile",
    "compile",
    "__import__",
    "open",
    "file",
    "input",
    "raw_input",
    "getattr",
    "setattr",
    "delattr",
    "globals",
    "locals",
    "vars",
    "breakpoint",
    "reload",
    "help",
    "memoryview",
];

/// Single callables that are dangerous although their module is not.
const DENY_NAMES: &[(&str, &str, &str)] = &[
    ("types", "FunctionType", "builds functions from code"),
    ("types", "CodeType", "builds code objects"),
    ("types", "MethodType", "binds functions"),
    ("torch", "load", "unpickles more data"),
    ("torch.serialization", "load", "unpickles more data"),
    ("torch.storage", "_load_from_bytes", "unpickles more data"),
    ("numpy", "load", "may unpickle more data"),
    ("numpy.lib.npyio", "load", "may unpickle more data"),
    ("joblib", "load", "unpickles more data"),
    ("operator", "attrgetter", "reaches attributes indirectly"),
    ("operator", "methodcaller", "calls methods indirectly"),
    ("_operator", "attrgetter", "reaches attributes indirectly"),
    ("_operator", "methodcaller", "calls methods indirectly"),
    ("functools", "partial", "calls indirectly"),
    ("functools", "reduce", "calls indirectly"),
    ("_functools", "partial", "calls indirectly"),
    ("_functools", "reduce", "calls indirectly"),
    ("uuid", "_get_command_stdout", "runs processes"),
    ("torch.serialization", "_load", "unpickles more data"),
    ("pandas", "read_pickle", "unpickles more data"),
    ("pandas.io.pickle", "read_pickle", "unpickles more data"),
    ("numpy", "loads", "unpickles more data"),
    ("joblib.numpy_pickle", "load", "unpickles more data"),
    ("keras.models", "load_model", "loads a model that may carry code"),
    ("builtins", "__getattribute__", "reaches attributes"),
    ("copyreg", "<extension>", "import decided at load time"),
];

/// Modules that are not dangerous by themselves but are used in exploits.
const SUSPICIOUS_MODULES: &[(&str, &str)] = &[
    ("operator", "indirect calls"),
    ("_operator", "indirect calls"),
    ("functools", "indirect calls"),
    ("_functools", "indirect calls"),
    ("base64", "decodes data at load time"),
    ("binascii", "decodes data at load time"),
    ("codecs", "decodes data at load time"),
    ("zlib", "decompresses data at load time"),
    ("gzip", "decompresses data at load time"),
    ("bz2", "decompresses data at load time"),
    ("lzma", "decompresses data at load time"),
    ("types", "builds functions and classes"),
    ("inspect", "interpreter introspection"),
    ("threading", "threads"),
    ("__main__", "code defined by whoever wrote the file"),
];

/// What real checkpoints import: allowed without a finding.
const ALLOW: &[(&str, &[&str])] = &[
    (
        "torch._utils",
        &[
            "_rebuild_tensor",
            "_rebuild_tensor_v2",
            "_rebuild_tensor_v3",
            "_rebuild_parameter",
            "_rebuild_parameter_with_state",
            "_rebuild_qtensor",
            "_rebuild_sparse_tensor",
            "_rebuild_sparse_csr_tensor",
            "_rebuild_device_tensor_from_numpy",
            "_rebuild_meta_tensor_no_storage",
            "_rebuild_wrapper_subclass",
            "_rebuild_nested_tensor",
        ],
    ),
    ("torch._tensor", &["_rebuild_from_type_v2", "_rebuild_from_type"]),
    (
        "torch",
        &[
            "FloatStorage",
            "DoubleStorage",
            "HalfStorage",
            "BFloat16Storage",
            "LongStorage",
            "IntStorage",
            "ShortStorage",
            "CharStorage",
            "ByteStorage",
            "BoolStorage",
            "ComplexFloatStorage",
            "ComplexDoubleStorage",
            "QInt8Storage",
            "QUInt8Storage",
            "UntypedStorage",
            "Size",
            "device",
            "float32",
            "float16",
            "bfloat16",
            "float64",
            "int64",
            "int32",
            "int16",
            "int8",
            "uint8",
            "bool",
            "Tensor",
            "per_tensor_affine",
            "per_channel_affine",
        ],
    ),
    ("torch.storage", &["UntypedStorage", "TypedStorage"]),
    ("torch.nn.parameter", &["Parameter"]),
    ("collections", &["OrderedDict", "defaultdict", "Counter", "deque"]),
    (
        "builtins",
        &[
            "set",
            "frozenset",
            "dict",
            "list",
            "tuple",
            "bytearray",
            "bytes",
            "complex",
            "slice",
            "range",
            "int",
            "float",
            "str",
            "bool",
            "object",
        ],
    ),
    (
        "__builtin__",
        &[
            "set",
            "frozenset",
            "dict",
            "list",
            "tuple",
            "bytearray",
            "complex",
            "slice",
        ],
    ),
    ("copy_reg", &["_reconstructor"]),
    ("copyreg", &["_reconstructor", "__newobj__"]),
    ("_codecs", &["encode"]),
    (
        "numpy",
        &["ndarray", "dtype", "float32", "float64", "int64", "int32", "bool_"],
    ),
    ("numpy.core.multiarray", &["_reconstruct", "scalar"]),
    ("numpy._core.multiarray", &["_reconstruct", "scalar"]),
    ("numpy.core.numeric", &["_frombuffer"]),
    ("numpy._core.numeric", &["_frombuffer"]),
    (
        "numpy.random._pickle",
        &["__randomstate_ctor", "__bit_generator_ctor", "__generator_ctor"],
    ),
    // joblib's array wrappers: the array bytes follow in the stream (pickle.rs skips them).
    ("joblib.numpy_pickle", &["NumpyArrayWrapper"]),
];

/// Module prefixes whose classes real checkpoints construct (full-model pickles).
const ALLOW_PREFIXES: &[&str] = &["torch.nn.modules.", "torch.optim.", "sklearn.", "numpy.dtypes"];

/// Frameworks whose *classes* real checkpoints carry (Hugging Face `training_args.bin`,
/// Lightning hyper-parameters, OmegaConf configs, YOLO and timm models, gradient-boosted
/// trees, pandas frames). Only a class name is allowed (it starts with a capital and has
/// no dot: no method or attribute reached through it); their functions stay unknown.
const ALLOW_CLASS_PREFIXES: &[&str] = &[
    "transformers.",
    "accelerate.",
    "peft.",
    "tokenizers.",
    "omegaconf.",
    "pytorch_lightning.",
    "lightning.",
    "lightning_fabric.",
    "timm.",
    "ultralytics.",
    "xgboost.",
    "lightgbm.",
    "catboost.",
    "scipy.sparse.",
    "pandas.core.",
    "torch.utils.data.",
    "torch.torch_version",
];

/// Single names from the standard library and frameworks that checkpoints carry.
const ALLOW_MORE: &[(&str, &[&str])] = &[
    ("datetime", &["datetime", "date", "time", "timedelta", "timezone"]),
    ("argparse", &["Namespace"]),
    ("typing", &["Any"]),
    ("enum", &["Enum", "IntEnum"]),
    ("decimal", &["Decimal"]),
    ("uuid", &["UUID"]),
    ("pandas._libs.internals", &["_unpickle_block"]),
    ("pandas.core.internals.blocks", &["new_block"]),
    ("pandas._libs.tslibs.timestamps", &["_unpickle_timestamp"]),
    ("pandas._libs.tslibs.timedeltas", &["_timedelta_unpickle"]),
    (
        "numpy",
        &[
            "float16",
            "int16",
            "int8",
            "uint8",
            "uint16",
            "uint32",
            "uint64",
            "complex64",
            "complex128",
            "str_",
            "object_",
        ],
    ),
];

fn is_class_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && !name.contains('.')
}

/// The verdict on one import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub severity: Option<Severity>,
    pub rule: &'static str,
    pub reason: String,
}

fn in_module(module: &str, root: &str) -> bool {
    module == root || module.strip_prefix(root).is_some_and(|r| r.starts_with('.'))
}

/// Classifies `module.name`. `None` severity: allowed.
pub fn classify(module: &str, name: &str) -> Verdict {
    let deny = |reason: &str| Verdict {
        severity: Some(Severity::Critical),
        rule: "pickle.dangerous-import",
        reason: reason.to_owned(),
    };
    if module == "<unresolved>" {
        return Verdict {
            severity: Some(Severity::High),
            rule: "pickle.unresolved-import",
            reason: "an import whose name is computed in the file".into(),
        };
    }
    if (module == "builtins" || module == "__builtin__") && DENY_BUILTINS.contains(&name) {
        return deny("evaluates code, imports, opens files or reaches attributes");
    }
    if let Some((_, _, why)) = DENY_NAMES
        .iter()
        .find(|(m, n, _)| *m == module && (*n == name || (n.starts_with('<') && name.starts_with('<'))))
    {
        return deny(why);
    }
    if let Some((_, why)) = DENY_MODULES.iter().find(|(m, _)| in_module(module, m)) {
        return deny(why);
    }
    if ALLOW
        .iter()
        .chain(ALLOW_MORE)
        .any(|(m, names)| *m == module && names.contains(&name))
        || ALLOW_PREFIXES.iter().any(|p| module.starts_with(p))
        || (is_class_name(name) && ALLOW_CLASS_PREFIXES.iter().any(|p| module.starts_with(p)))
    {
        return Verdict {
            severity: None,
            rule: "pickle.allowed-import",
            reason: "used by real checkpoints".into(),
        };
    }
    if let Some((_, why)) = SUSPICIOUS_MODULES.iter().find(|(m, _)| in_module(module, m)) {
        return Verdict {
            severity: Some(Severity::High),
            rule: "pickle.suspicious-import",
            reason: (*why).to_owned(),
        };
    }
    if module == "builtins" || module == "__builtin__" {
        return Verdict {
            severity: Some(Severity::High),
            rule: "pickle.suspicious-import",
            reason: "a builtin that real checkpoints do not use".into(),
        };
    }
    Verdict {
        severity: Some(Severity::Medium),
        rule: "pickle.unknown-import",
        reason: "not on the allow list: loading it runs that code; review it".into(),
    }
}

/// The verdict on one import, knowing whether the file then calls it: loading a call
/// of anything off the allow list runs that code, so an unknown import that is called
/// (REDUCE, OBJ, INST, NEWOBJ, NEWOBJ_EX, BUILD) is high; a bare unknown import stays
/// medium.
pub fn classify_use(module: &str, name: &str, called: bool) -> Verdict {
    let v = classify(module, name);
    if called && v.severity == Some(Severity::Medium) && v.rule == "pickle.unknown-import" {
        return Verdict {
            severity: Some(Severity::High),
            rule: "pickle.unknown-call",
            reason: "not on the allow list, and called: loading the file runs it".into(),
        };
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let sev = |m, n| classify(m, n).severity;
        assert_eq!(sev("os", "system"), Some(Severity::Critical));
        assert_eq!(sev("os.path", "join"), Some(Severity::Critical));
        assert_eq!(sev("posix", "system"), Some(Severity::Critical));
        assert_eq!(sev("builtins", "eval"), Some(Severity::Critical));
        assert_eq!(sev("builtins", "getattr"), Some(Severity::Critical));
        assert_eq!(sev("subprocess", "Popen"), Some(Severity::Critical));
        assert_eq!(sev("torch", "load"), Some(Severity::Critical));
        assert_eq!(sev("operator", "attrgetter"), Some(Severity::Critical));
        assert_eq!(sev("operator", "add"), Some(Severity::High));
        assert_eq!(sev("torch._utils", "_rebuild_tensor_v2"), None);
        assert_eq!(sev("collections", "OrderedDict"), None);
        assert_eq!(sev("numpy.core.multiarray", "_reconstruct"), None);
        assert_eq!(sev("torch.nn.modules.linear", "Linear"), None);
        assert_eq!(sev("mypackage.models", "Net"), Some(Severity::Medium));
        assert_eq!(
            sev("osmosis", "x"),
            Some(Severity::Medium),
            "a module named like os is not os"
        );
        assert_eq!(sev("<unresolved>", "<unresolved>"), Some(Severity::High));
        assert_eq!(sev("transformers.training_args", "TrainingArguments"), None);
        assert_eq!(
            sev("transformers.dynamic_module_utils", "get_class_from_dynamic_module"),
            Some(Severity::Medium),
            "a framework's functions are not allowed, only its classes"
        );
        assert_eq!(
            sev("transformers", "AutoModel.from_pretrained"),
            Some(Severity::Medium),
            "no dotted names"
        );
        assert_eq!(sev("pip", "main"), Some(Severity::Critical));
        assert_eq!(sev("_operator", "attrgetter"), Some(Severity::Critical));
        assert_eq!(sev("uuid", "_get_command_stdout"), Some(Severity::Critical));
        assert_eq!(sev("uuid", "UUID"), None);
        assert_eq!(sev("base64", "b64decode"), Some(Severity::High));
        let called = |m, n| classify_use(m, n, true);
        assert_eq!(called("mypackage.models", "Net").severity, Some(Severity::High));
        assert_eq!(called("mypackage.models", "Net").rule, "pickle.unknown-call");
        assert_eq!(
            classify_use("mypackage.models", "Net", false).severity,
            Some(Severity::Medium)
        );
        assert_eq!(called("torch._utils", "_rebuild_tensor_v2").severity, None);
    }
}
