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
    ("functools", "partial", "calls indirectly"),
    ("functools", "reduce", "calls indirectly"),
    ("copyreg", "<extension>", "import decided at load time"),
];

/// Modules that are not dangerous by themselves but are used in exploits.
const SUSPICIOUS_MODULES: &[(&str, &str)] = &[
    ("operator", "indirect calls"),
    ("functools", "indirect calls"),
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
    if ALLOW.iter().any(|(m, names)| *m == module && names.contains(&name))
        || ALLOW_PREFIXES.iter().any(|p| module.starts_with(p))
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
    }
}
