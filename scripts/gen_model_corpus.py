#!/usr/bin/env python3
"""Generates the model-scanner test corpus in crates/modelscan/tests/corpus.

    pip install numpy==2.4.6 h5py==3.16.0 joblib==1.6.0 py7zr==1.0.0
    python3 scripts/gen_model_corpus.py

Three folders: malicious/ (each pickle trick and container the scanner must flag),
benign/ (checkpoints of the shapes real frameworks write; must be clean) and broken/
(must be reported as unscannable). expected.json names, for every malicious file, the
rule that must fire and the least severity it must have.

Nothing here downloads a model. PyTorch is not needed: the modules a PyTorch
checkpoint refers to (torch._utils, torch.FloatStorage, ...) are stood in for by small
fake modules, so Python's own pickle writes exactly the opcodes PyTorch writes. No
sample is ever loaded: the payloads only name harmless commands (`echo`).
The output is deterministic (zip timestamps are fixed, no random data is used), except
the 7z files: py7zr writes its own timestamps and salts, so they differ byte for byte
from run to run (same content, same verdicts).
"""

import io
import json
import os
import pickle
import struct
import sys
import tarfile
import types
import zipfile
from collections import OrderedDict

import h5py
import joblib
import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "modelscan", "tests", "corpus")
FIXED = (2026, 1, 1, 0, 0, 0)
expected = {}


def out(kind, name, data):
    path = os.path.join(ROOT, kind, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def malicious(name, data, rule, severity="high", broken=False):
    out("malicious", name, data)
    expected[name] = {"rule": rule, "severity": severity}
    if broken:
        # The stream breaks after the payload: a loader runs the call before it fails.
        expected[name]["broken"] = True


def zip_bytes(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=FIXED)
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return buf.getvalue()


# --- fake modules so pickle writes the globals real frameworks write -----------------

def fake_module(name, **attrs):
    mod = types.ModuleType(name)
    for k, v in attrs.items():
        v.__module__ = name
        v.__qualname__ = k
        v.__name__ = k
        setattr(mod, k, v)
    sys.modules[name] = mod
    return mod


class FloatStorage:
    pass


def _rebuild_tensor_v2(*a):
    pass


def _load_from_bytes(b):
    pass


fake_module("torch")
fake_module("torch._utils", _rebuild_tensor_v2=_rebuild_tensor_v2)
sys.modules["torch"].FloatStorage = FloatStorage
FloatStorage.__module__ = "torch"
FloatStorage.__qualname__ = "FloatStorage"
fake_module("torch.storage", _load_from_bytes=_load_from_bytes)


class Linear:
    """Stands in for torch.nn.modules.linear.Linear in a full-model pickle."""

    def __init__(self):
        self.in_features = 4
        self.out_features = 2


fake_module("torch.nn.modules.linear", Linear=Linear)


class Tensor:
    """Pickles like a PyTorch tensor: _rebuild_tensor_v2 over a persistent storage."""

    def __init__(self, key, n):
        self.key, self.n = key, n

    def __reduce__(self):
        storage = ("storage", FloatStorage, self.key, "cpu", self.n)
        return (_rebuild_tensor_v2, (StorageRef(storage), 0, (self.n,), (1,), False, OrderedDict()))


class StorageRef:
    def __init__(self, pid):
        self.pid = pid


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, StorageRef) else None


def torch_pickle(obj, protocol=2):
    buf = io.BytesIO()
    TorchPickler(buf, protocol=protocol).dump(obj)
    return buf.getvalue()


def torch_zip(data_pkl, name="archive"):
    return zip_bytes([
        (f"{name}/data.pkl", data_pkl),
        (f"{name}/byteorder", b"little"),
        (f"{name}/data/0", struct.pack("<8f", *range(8))),
        (f"{name}/version", b"3\n"),
    ])


class Reduce:
    """An object whose unpickling calls `fn(*args)`."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def p0_global_call(module, name, arg):
    return f"c{module}\n{name}\n(S'{arg}'\ntR.".encode()


def short_unicode(s):
    b = s.encode()
    return bytes([0x8C, len(b)]) + b


# --- malicious ------------------------------------------------------------------------

malicious("os_system_p0.pkl", p0_global_call("os", "system", "echo owned"), "pickle.dangerous-import", "critical")
malicious("posix_system_p2.pkl", pickle.dumps(Reduce(os.system, "echo owned"), protocol=2), "pickle.dangerous-import", "critical")
malicious("builtins_eval_p4.pkl", pickle.dumps(Reduce(eval, "1+1"), protocol=4), "pickle.dangerous-import", "critical")
malicious("builtins_exec_p5.pkl", pickle.dumps(Reduce(exec, "print(1)"), protocol=5), "pickle.dangerous-import", "critical")
# Names built on the stack and fetched back from the memo before STACK_GLOBAL.
memo_trick = (
    b"\x80\x04" + short_unicode("builtins") + b"\x94" + short_unicode("exec") + b"\x94"
    + b"00h\x00h\x01\x93" + short_unicode("print(1)") + b"\x85R."
)
malicious("stack_global_memo_trick.pkl", memo_trick, "pickle.dangerous-import", "critical")
malicious("subprocess_inst_p0.pkl", b"(S'echo owned'\nisubprocess\nPopen\n.", "pickle.dangerous-import", "critical")
malicious("obj_opcode_p1.pkl", b"(cbuiltins\nexec\nS'print(1)'\no.", "pickle.dangerous-import", "critical")
newobj_ex = (
    b"\x80\x04" + short_unicode("subprocess") + short_unicode("Popen") + b"\x93"
    + short_unicode("echo") + b"\x85}\x92."
)
malicious("newobj_ex_popen.pkl", newobj_ex, "pickle.dangerous-import", "critical")
malicious(
    "getattr_indirection.pkl",
    pickle.dumps(Reduce(getattr, Reduce(__import__, "os"), "system"), protocol=2),
    "pickle.dangerous-import",
    "critical",
)
inner = p0_global_call("os", "system", "echo owned")
malicious(
    "nested_pickle_in_bytes.pkl",
    pickle.dumps(Reduce(_load_from_bytes, inner), protocol=3),
    "pickle.dangerous-import",
    "critical",
)
# Only the pickle inside a bytes value is malicious; the outer one is a plain dict.
malicious("nested_pickle_only.pkl", pickle.dumps({"blob": inner}, protocol=4), "pickle.dangerous-import", "critical")
malicious(
    "second_pickle_in_stream.pkl",
    pickle.dumps({"ok": 1}, protocol=2) + p0_global_call("os", "system", "echo owned"),
    "pickle.dangerous-import",
    "critical",
)
malicious("extension_code.pkl", b"\x80\x02\x82\x01)R.", "pickle.dangerous-import", "critical")
malicious("hidden_stack_global.pkl", b"\x80\x04" + short_unicode("os") + b"K\x01\x93)R.", "pickle.unresolved-import", "high")
evil_state = torch_pickle(OrderedDict(weight=Reduce(os.system, "echo owned")))
malicious("torch_zip_malicious.pt", torch_zip(evil_state), "pickle.dangerous-import", "critical")
malicious("torch_zip_named_bin.bin", torch_zip(evil_state, "pytorch_model"), "pickle.dangerous-import", "critical")
malicious("zip_named_pkl.pkl", torch_zip(evil_state), "pickle.dangerous-import", "critical")
# PyTorch's legacy stream: magic number, protocol, sys info, the model, storage keys, raw data.
legacy = b"".join(pickle.dumps(x, protocol=2) for x in [0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}])
malicious(
    "legacy_torch_stream.pt",
    legacy + pickle.dumps(Reduce(os.system, "echo owned"), protocol=2) + pickle.dumps(["0"], protocol=2) + b"\x00" * 64,
    "pickle.dangerous-import",
    "critical",
)
tbuf = io.BytesIO()
with tarfile.open(fileobj=tbuf, mode="w", format=tarfile.USTAR_FORMAT) as t:
    for name, data in [("sys_info", pickle.dumps({"little_endian": True}, protocol=2)),
                       ("pickle", pickle.dumps(Reduce(os.system, "echo owned"), protocol=2))]:
        info = tarfile.TarInfo(name)
        info.size, info.mtime = len(data), 0
        t.addfile(info, io.BytesIO(data))
malicious("legacy_torch_tar.tar", tbuf.getvalue(), "pickle.dangerous-import", "critical")
# A NumPy object array whose data is a pickle that calls os.system.
npy_buf = io.BytesIO()
np.save(npy_buf, np.array([Reduce(os.system, "echo owned")], dtype=object), allow_pickle=True)
malicious("object_array.npy", npy_buf.getvalue(), "pickle.dangerous-import", "critical")
npz_buf = io.BytesIO()
np.savez(npz_buf, ok=np.zeros(3, dtype=np.float32), evil=np.array([Reduce(os.system, "echo")], dtype=object))
malicious("object_array.npz", npz_buf.getvalue(), "pickle.dangerous-import", "critical")
keras_lambda = {
    "class_name": "Sequential",
    "config": {"layers": [
        {"class_name": "Dense", "module": "keras.layers", "config": {"units": 4}},
        {"class_name": "Lambda", "module": "keras.layers", "config": {"function": {"class_name": "__lambda__", "config": {"code": "4wEAAAAAAAAA"}}}},
    ]},
}
malicious("lambda_layer.keras", zip_bytes([("config.json", json.dumps(keras_lambda).encode()), ("metadata.json", b"{}")]), "keras.lambda-layer", "critical")
malicious("zip_path_traversal.zip", zip_bytes([("../../etc/cron.d/evil", b"* * * * * root echo")]), "zip.path-traversal", "high")
malicious("zip_bomb.zip", zip_bytes([("weights.bin", b"\x00" * (64 << 20))]), "zip.bomb", "high")


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf(kvs):
    body = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs))
    for k, v in kvs:
        body += gguf_string(k)
        if isinstance(v, str):
            body += struct.pack("<I", 8) + gguf_string(v)
        elif isinstance(v, list):
            body += struct.pack("<IIQ", 9, 8, len(v)) + b"".join(gguf_string(x) for x in v)
        else:
            body += struct.pack("<II", 4, v)
    return body


malicious(
    "template_injection.gguf",
    gguf([("general.architecture", "llama"),
          ("tokenizer.chat_template", "{{ ''.__class__.__mro__[1].__subclasses__() }}{% for m in messages %}{{ m.content }}{% endfor %}")]),
    "gguf.template-injection",
    "high",
)


def safetensors(tensors, metadata=None):
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


malicious(
    "code_in_metadata.safetensors",
    safetensors({"w": ("F32", [2], struct.pack("<2f", 1, 2))}, {"format": "pt", "note": "import os; os.system('echo')"}),
    "safetensors.suspicious-metadata",
    "medium",
)

# ONNX, encoded by hand (protobuf wire format), so no onnx package is needed.
def pb_varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def pb_bytes(num, payload):
    return pb_varint((num << 3) | 2) + pb_varint(len(payload)) + payload


def pb_int(num, value):
    return pb_varint(num << 3) + pb_varint(value)


def onnx_model(nodes, opsets=((b"", 17),), initializers=()):
    graph = b"".join(pb_bytes(1, n) for n in nodes) + pb_bytes(2, b"g") + b"".join(pb_bytes(5, t) for t in initializers)
    model = pb_int(1, 8) + pb_bytes(2, b"rampart-corpus") + pb_bytes(7, graph)
    for domain, version in opsets:
        model += pb_bytes(8, pb_bytes(1, domain) + pb_int(2, version))
    return model


relu = pb_bytes(1, b"x") + pb_bytes(2, b"y") + pb_bytes(4, b"Relu")
custom = pb_bytes(1, b"x") + pb_bytes(2, b"y") + pb_bytes(4, b"Pwn") + pb_bytes(7, b"com.evil.ops")
malicious("custom_operator.onnx", onnx_model([relu, custom], ((b"", 17), (b"com.evil.ops", 1))), "onnx.custom-operator-domain", "high")
escaping = (pb_int(1, 4) + pb_int(2, 1) + pb_bytes(8, b"w")
            + pb_bytes(13, pb_bytes(1, b"location") + pb_bytes(2, b"../../../etc/shadow")) + pb_int(14, 1))
malicious("external_data_escape.onnx", onnx_model([relu], initializers=[escaping]), "onnx.external-data-escape", "high")


def keras_h5(path, config):
    with h5py.File(path, "w", track_order=True) as f:
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(config)
        f.create_group("model_weights").create_dataset("dense/kernel", data=np.zeros((4, 2), dtype=np.float32), track_times=False)


h5_tmp = os.path.join(ROOT, "h5.tmp")
keras_h5(h5_tmp, keras_lambda)
with open(h5_tmp, "rb") as f:
    malicious("lambda_layer.h5", f.read(), "keras.lambda-layer", "critical")
os.remove(h5_tmp)

# joblib: array bytes sit in the pickle stream; a malicious object after them, or
# inside an object array, must still be found.
def joblib_bytes(obj):
    buf = io.BytesIO()
    joblib.dump(obj, buf)
    return buf.getvalue()


malicious("joblib_after_arrays.joblib", joblib_bytes({"w": np.arange(64, dtype=np.float32), "after": Reduce(os.system, "echo")}),
          "pickle.dangerous-import", "critical")
malicious("joblib_object_array.joblib", joblib_bytes({"w": np.zeros(4), "o": np.array([Reduce(os.system, "echo")], dtype=object)}),
          "pickle.dangerous-import", "critical")

# --- bypasses described in public advisories ------------------------------------------
# Written from the descriptions in GHSA/CVE write-ups against picklescan, modelscan,
# fickling and modelaudit (callables their deny lists missed, payloads hidden in
# encoded strings, archives the scanners could not open but loaders can); no file is
# taken from any scanner's tests.

def fake_callable(module, name):
    """A stand-in in a made-up module (never a real one): pickle writes only its path."""
    def f(*a, **k):
        pass
    for i in range(1, module.count(".") + 2):
        part = ".".join(module.split(".")[:i])
        assert part not in sys.modules or getattr(sys.modules[part], "__fake__", False), part
        sys.modules.setdefault(part, types.ModuleType(part)).__fake__ = True
    f.__module__, f.__qualname__, f.__name__ = module, name, name
    setattr(sys.modules[module], name, f)
    return f


def fake_class(module, name, setstate=False):
    fake_callable(module, "_placeholder")
    attrs = {"__module__": module}
    if setstate:
        attrs["__setstate__"] = lambda self, st: None
    cls = type(name, (), attrs)
    cls.__qualname__ = name
    setattr(sys.modules[module], name, cls)
    return cls


def p4_call(module, name, arg):
    """Protocol 4: STACK_GLOBAL module.name, then REDUCE with one string argument."""
    return b"\x80\x04" + short_unicode(module) + short_unicode(name) + b"\x93" + short_unicode(arg) + b"\x85R."


for mod, name in [
    ("pip", "main"),                       # installs a package named in the pickle
    ("_posixsubprocess", "fork_exec"),
    ("idlelib.pyshell", "ModifiedInterpreter"),
    ("lib2to3.pgen2.pgen", "ParserGenerator"),
    ("distutils.file_util", "write_file"),
    ("cProfile", "run"),
    ("profile", "run"),
    ("pydoc", "pipepager"),
    ("_operator", "attrgetter"),
    ("_functools", "partial"),
    ("uuid", "_get_command_stdout"),
    ("numpy.f2py.crackfortran", "getlincoef"),
    ("torch.utils.bottleneck.__main__", "run_cprofile"),
    ("torch.jit", "load"),
    ("test.support.script_helper", "assert_python_ok"),
    ("_pyrepl.pager", "pipe_pager"),
    ("ensurepip", "_run_pip"),
    ("logging.config", "listen"),
]:
    malicious(f"advisory_{mod.replace('.', '_')}_{name}.pkl", p4_call(mod, name, "echo owned"),
              "pickle.dangerous-import", "critical")

# Callables on no list at all: loading the file calls them, so the default scan fails.
helper = fake_callable("mytools.setup_hooks", "install")
malicious("unknown_callable_reduce.pkl", pickle.dumps(Reduce(helper, "x"), protocol=2), "pickle.unknown-call", "high")
malicious("unknown_callable_p4.pkl", p4_call("mytools.setup_hooks", "install", "x"), "pickle.unknown-call", "high")
malicious("unknown_callable_inst_p0.pkl", b"(S'x'\nimytools.setup_hooks\nRunner\n.", "pickle.unknown-call", "high")
Hook = fake_class("mytools.state", "Hook", setstate=True)
hook = Hook.__new__(Hook)
hook.__dict__["cmd"] = "echo owned"
malicious("unknown_class_setstate.pkl", pickle.dumps(hook, protocol=2), "pickle.unknown-call", "high")
malicious("unknown_class_newobj_p4.pkl", pickle.dumps(hook, protocol=4), "pickle.unknown-call", "high")

# Payloads carried as encoded strings and decoded at load time.
import base64 as _b64
import codecs as _codecs
import gzip as _gzip
import zlib as _zlib
inner4 = pickle.dumps(Reduce(os.system, "echo owned"), protocol=4)
import binascii as _binascii
loads = fake_callable("mytools.io", "loads")
b64decode, decompress, codecs_decode, unhexlify = _b64.b64decode, _zlib.decompress, _codecs.decode, _binascii.unhexlify
malicious("encoded_base64_payload.pkl",
          pickle.dumps(Reduce(loads, Reduce(b64decode, _b64.b64encode(inner4).decode())), protocol=4),
          "pickle.dangerous-import", "critical")
malicious("encoded_zlib_base64_payload.pkl",
          pickle.dumps(Reduce(loads, Reduce(decompress, Reduce(b64decode, _b64.b64encode(_zlib.compress(inner4)).decode()))), protocol=2),
          "pickle.dangerous-import", "critical")
malicious("encoded_hex_codecs_payload.pkl",
          pickle.dumps(Reduce(loads, Reduce(codecs_decode, inner4.hex(), "hex")), protocol=3),
          "pickle.dangerous-import", "critical")
malicious("encoded_unhexlify_p0.pkl",
          pickle.dumps(Reduce(loads, Reduce(unhexlify, inner4.hex())), protocol=0),
          "pickle.dangerous-import", "critical")
# Protocol 2 writes bytes as _codecs.encode(text, "latin1"): a pickle inside that.
malicious("latin1_bytes_payload_p2.pkl", pickle.dumps({"blob": inner4}, protocol=2), "pickle.dangerous-import", "critical")

# A stream that breaks right after the call: the loader has run it by then.
malicious("broken_after_call.pkl", pickle.dumps(Reduce(os.system, "echo owned"), protocol=2)[:-1] + b"\xff",
          "pickle.dangerous-import", "critical", broken=True)

# Archives: a member whose checksum is wrong (PyTorch's reader does not check it), a
# member flagged as encrypted, bytes in front of the zip, 7z, gzip and zlib joblib files.
evil_zip = bytearray(torch_zip(evil_state))
crc_at = evil_zip.index(b"PK\x01\x02") + 16          # CRC-32 in the central directory
evil_zip[crc_at:crc_at + 4] = b"\xde\xad\xbe\xef"
first = 14                                             # and in the first local header
evil_zip[first:first + 4] = b"\xde\xad\xbe\xef"
malicious("zip_bad_crc.pt", bytes(evil_zip), "pickle.dangerous-import", "critical")
flagged = bytearray(torch_zip(evil_state))
flagged[6] |= 1
cd = flagged.index(b"PK\x01\x02")
flagged[cd + 8] |= 1
malicious("zip_encrypted_flag.pt", bytes(flagged), "zip.encrypted", "high")
malicious("zip_with_prefix.pt", b"#!/bin/sh\n# not a model\n" + torch_zip(evil_state), "pickle.dangerous-import", "critical")

import py7zr
def seven_zip(members, password=None):
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", password=password, header_encryption=bool(password)) as z:
        for name, data in members:
            z.writestr(data, name)
    return buf.getvalue()

malicious("model.7z", seven_zip([("archive/data.pkl", evil_state), ("archive/version", b"3")]), "pickle.dangerous-import", "critical")
malicious("encrypted.7z", seven_zip([("archive/data.pkl", evil_state)], password="hunter2"), "7z.encrypted", "high")
malicious("torch_zip_in_7z.7z", seven_zip([("model.pt", torch_zip(evil_state))]), "pickle.dangerous-import", "critical")
# 64 MiB of zeros behind a pickle header: a few KiB of LZMA2 that would expand past the
# zip-bomb ratio of the whole archive (solid 7z blocks have no per-member ratio).
malicious("bomb.7z", seven_zip([("archive/data.pkl", b"\x80\x02" + bytes(64 << 20))]), "7z.bomb", "high")

def joblib_compressed(obj, method):
    buf = io.BytesIO()
    joblib.dump(obj, buf, compress=(method, 3))
    return buf.getvalue()

malicious("joblib_zlib.joblib", joblib_compressed({"w": np.zeros(4), "x": Reduce(os.system, "echo")}, "zlib"),
          "pickle.dangerous-import", "critical")
malicious("joblib_gzip.joblib", joblib_compressed({"w": np.zeros(4), "x": Reduce(os.system, "echo")}, "gzip"),
          "pickle.dangerous-import", "critical")
malicious("gzip_pickle.pkl.gz", _gzip.compress(inner4, mtime=0), "pickle.dangerous-import", "critical")
# An object array whose objects call something off the allow list.
npy_unknown = io.BytesIO()
np.save(npy_unknown, np.array([Reduce(helper, "x")], dtype=object), allow_pickle=True)
malicious("object_array_unknown_call.npy", npy_unknown.getvalue(), "pickle.unknown-call", "high")

# --- benign ---------------------------------------------------------------------------

state = OrderedDict([("linear.weight", Tensor("0", 8)), ("linear.bias", Tensor("1", 2))])
out("benign", "state_dict.pt", torch_zip(torch_pickle(state)))
out("benign", "full_model.pt", torch_zip(torch_pickle({"model": Linear(), "epoch": 3})))
out("benign", "legacy_stream.pt", legacy + torch_pickle(state) + pickle.dumps(["0", "1"], protocol=2) + struct.pack("<10f", *range(10)))
for proto in range(6):
    out("benign", f"plain_p{proto}.pkl", pickle.dumps(
        {"name": "model", "layers": [1, 2, 3], "lr": 0.01, "tags": ("a", "b"), "ok": True, "none": None, "big": 2**70},
        protocol=proto))
out("benign", "set_and_bytes_p4.pkl", pickle.dumps({"s": {1, 2}, "f": frozenset({3}), "b": b"\x00\x01", "ba": bytearray(b"x")}, protocol=4))
out("benign", "numpy_pickled_array.pkl", pickle.dumps({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, protocol=2))
npy = io.BytesIO()
np.save(npy, np.arange(12, dtype=np.float32).reshape(3, 4))
out("benign", "array.npy", npy.getvalue())
npz = io.BytesIO()
np.savez_compressed(npz, a=np.ones((2, 2)), b=np.arange(5))
out("benign", "arrays.npz", npz.getvalue())
out("benign", "model.safetensors", safetensors(
    {"w": ("F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)), "b": ("BF16", [2], b"\x00\x00\x80\x3f")}, {"format": "pt"}))
out("benign", "model.gguf", gguf([
    ("general.architecture", "llama"),
    ("general.name", "tiny"),
    ("llama.context_length", 2048),
    ("tokenizer.ggml.tokens", ["<s>", "</s>", "hello"]),
    ("tokenizer.chat_template", "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}{% endfor %}"),
]))
keras_ok = {"class_name": "Sequential", "module": "keras", "config": {"layers": [
    {"class_name": "Dense", "module": "keras.layers", "config": {"units": 4}}]}}
out("benign", "dense.keras", zip_bytes([("config.json", json.dumps(keras_ok).encode()), ("metadata.json", b"{}")]))
out("benign", "arrays.joblib", joblib_bytes({"w": np.arange(100, dtype=np.float32).reshape(10, 10), "b": np.ones(3, dtype=np.int64),
                                             "names": np.array(["ab", "cde"], dtype="<U5"), "meta": {"lr": 0.1}}))
out("benign", "relu.onnx", onnx_model([relu], ((b"", 17), (b"ai.onnx.ml", 3))))
keras_h5(h5_tmp, keras_ok)
with open(h5_tmp, "rb") as f:
    out("benign", "dense.h5", f.read())
os.remove(h5_tmp)

# Object arrays of plain objects: np.load(allow_pickle=True) builds nothing but them.
npy_obj = io.BytesIO()
np.save(npy_obj, np.array(["cat", {"label": 1}, 2.5, None], dtype=object), allow_pickle=True)
out("benign", "object_array_plain.npy", npy_obj.getvalue())
# Framework classes real checkpoints pickle (Hugging Face training_args.bin, Lightning).
TrainingArguments = fake_class("transformers.training_args", "TrainingArguments")
IntervalStrategy = fake_class("transformers.trainer_utils", "IntervalStrategy")
ta = TrainingArguments.__new__(TrainingArguments)
ta.__dict__.update({"output_dir": "out", "learning_rate": 5e-5, "eval_strategy": IntervalStrategy.__new__(IntervalStrategy)})
out("benign", "training_args.bin", torch_zip(torch_pickle(ta)))
import argparse, datetime
out("benign", "lightning_hparams.ckpt", torch_zip(torch_pickle({
    "state_dict": state, "hyper_parameters": argparse.Namespace(lr=0.1, layers=2),
    "saved": datetime.datetime(2026, 1, 1), "epoch": 3})))
out("benign", "model.7z", seven_zip([("archive/data.pkl", torch_pickle(state)), ("archive/version", b"3")]))
out("benign", "arrays_zlib.joblib", joblib_compressed({"w": np.arange(10, dtype=np.float32)}, "zlib"))
# Tensor data that happens to start with the gzip and zlib magic bytes is still tensor data.
out("benign", "tensor_bytes_like_gzip.pt", zip_bytes([
    ("archive/data.pkl", torch_pickle(state)),
    ("archive/data/0", b"\x1f\x8b" + struct.pack("<7f", *range(7)) + b"\x00\x00"),
    ("archive/data/1", b"\x78\x9c" + struct.pack("<3f", 1, 2, 3) + b"\x00\x00"),
    ("archive/version", b"3\n"),
]))

# --- broken ---------------------------------------------------------------------------

out("broken", "truncated.pkl", pickle.dumps({"a": list(range(100))}, protocol=4)[:-20])
out("broken", "unknown_opcode.pkl", b"\x80\x04\xff.")
out("broken", "bad_protocol.pkl", b"\x80\x09N.")
out("broken", "not_a_model.bin", bytes((i * 37 + 11) % 251 for i in range(4096)))
out("broken", "corrupt_zip.pt", b"PK\x03\x04" + b"\x00" * 200)
overlap = json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}).encode()
out("broken", "overlapping.safetensors", struct.pack("<Q", len(overlap)) + overlap + b"\x00" * 12)
bad_shape = json.dumps({"a": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 8]}}).encode()
out("broken", "offsets_past_data.safetensors", struct.pack("<Q", len(bad_shape)) + bad_shape + b"\x00" * 8)
out("broken", "bad_version.gguf", b"GGUF" + struct.pack("<IQQ", 99, 0, 0))
out("broken", "truncated.gguf", gguf([("general.name", "x" * 100)])[:40])
out("broken", "bad_header.npy", b"\x93NUMPY\x01\x00\xff\x7f{'descr'")
out("broken", "no_model_config.h5", b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
out("broken", "truncated.onnx", onnx_model([relu])[:-5])

with open(os.path.join(ROOT, "expected.json"), "w") as f:
    json.dump(expected, f, indent=2, sort_keys=True)
    f.write("\n")
print(f"wrote {sum(len(fs) for _, _, fs in os.walk(ROOT))} files under {os.path.relpath(ROOT)}")
