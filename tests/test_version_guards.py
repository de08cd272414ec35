"""Version and ABI guards: a runtime the delegate was not checked against, or one
whose structs do not look like the declared ABI, is refused with a clean error,
never run.

Already in tests/test_runtime_bad_input.py (not repeated here): an untested
tensorflow version through ``load_delegate`` (Python gate and the
``allow_untested_runtime`` escape hatch) and the library's own gate through
``tf.lite.experimental.load_delegate`` (unknown version, missing version, unknown
option, bad num_threads).

Here:
* the Python gate at *interpreter construction*, for both runtimes (an unknown
  ``ai_edge_litert`` version, a missing ``ai_edge_litert``, an untested TF);
* the library's gate for every runtime name and through LiteRT's own loader;
* ``allow_untested_runtime`` must be a real bool (``"no"`` is not ``True``);
* a library that is not the delegate (``SBNN_DELEGATE_LIB`` pointing elsewhere);
* simulated ABI mismatches: the delegate's Prepare is called (through ctypes, as a
  runtime would) on a fake ``TfLiteContext`` laid out like a *different* TFLite
  (a longer ``TfLiteTensor``, shifted ``TfLiteRegistration`` / ``TfLiteNode``
  fields, a missing callback, implausible sizes) and must refuse with a message;
  the same fake laid out as declared is accepted (the control).
"""

from __future__ import annotations

import ctypes as C
import importlib.metadata
import importlib.util
import struct
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _runtime_helpers import cached_convert  # noqa: E402
import tensorflow as tf  # noqa: E402

import sbnn_runtime
from sbnn_runtime import interpreter as runtime  # the module: its private helpers too

HAS_LITERT = importlib.util.find_spec("ai_edge_litert") is not None


def _quant_model():
    from test_runtime_ops import build_quant

    return cached_convert("quant", build_quant)[1]


# ---- the Python gate at interpreter construction ----------------------------------


def _fake_versions(monkeypatch, tensorflow=None, litert=None, litert_missing=False):
    real = importlib.metadata.version

    def version(name):
        if name == "ai-edge-litert":
            if litert_missing:
                raise importlib.metadata.PackageNotFoundError(name)
            if litert is not None:
                return litert
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    if tensorflow is not None:
        monkeypatch.setattr(tf, "__version__", tensorflow)


@pytest.mark.parametrize("version", ["2.3.1", "2.4.0", "1.0.0", "2.3.0rc1", "garbage"])
def test_unknown_litert_version_refused_at_construction(monkeypatch, version):
    _fake_versions(monkeypatch, litert=version)
    with pytest.raises(runtime.UnsupportedRuntimeError) as err:
        runtime.Interpreter(_quant_model(), runtime="ai_edge_litert")
    msg = str(err.value)
    assert f"ai_edge_litert {version}" in msg and "2.3.0" in msg


@pytest.mark.parametrize("version", ["2.17.0", "2.16.0", "2.15.1", "2.16.2-dev"])
def test_untested_tensorflow_refused_at_construction(monkeypatch, version):
    _fake_versions(monkeypatch, tensorflow=version)
    with pytest.raises(runtime.UnsupportedRuntimeError, match=f"tensorflow {version}"):
        runtime.Interpreter(_quant_model())


def test_missing_litert_is_an_import_error_with_the_fix(monkeypatch):
    _fake_versions(monkeypatch, litert_missing=True)
    with pytest.raises(ImportError, match="pip install 'ai-edge-litert==2.3.0'"):
        runtime.Interpreter(_quant_model(), runtime="ai_edge_litert")
    with pytest.raises(ImportError, match="ai-edge-litert"):
        runtime.runtime_version("ai_edge_litert")


def test_untested_runtime_escape_hatch_needs_a_real_bool():
    for value in ("no", "false", 0.5, 1, None, "True"):
        with pytest.raises(ValueError, match=r"allow_untested_runtime must be True or False, got " + repr(value).replace("(", r"\(").replace(".", r"\.")):
            runtime.load_delegate(allow_untested_runtime=value)
    runtime.load_delegate(allow_untested_runtime=False)


# ---- the library's gate ------------------------------------------------------------


def _native(options):
    return tf.lite.experimental.load_delegate(runtime.library_path(), options)


@pytest.mark.parametrize(
    "runtime_name, version, expect",
    [
        ("tensorflow", "2.16.3", "tensorflow 2.16.3 is not a tested runtime version"),
        ("tensorflow", "2.3.0", "tensorflow 2.3.0 is not a tested runtime version"),
        ("ai_edge_litert", "2.16.2", "ai_edge_litert 2.16.2 is not a tested runtime version"),
        ("ai_edge_litert", "2.3.0 ", "ai_edge_litert 2.3.0  is not a tested"),
        ("tflite", "2.17.0", "tflite 2.17.0 is not a tested runtime version"),
        ("pytorch", "2.16.2", "unknown runtime 'pytorch'"),
        ("", "2.16.2", "'runtime' and 'runtime_version' are required"),
    ],
)
def test_library_gate_names_runtime_and_version(runtime_name, version, expect):
    with pytest.raises(ValueError, match=expect.replace("(", r"\(")):
        _native({"runtime": runtime_name, "runtime_version": version})


def test_escape_hatch_does_not_accept_unknown_runtimes():
    with pytest.raises(ValueError, match="unknown runtime 'pytorch'"):
        _native({"runtime": "pytorch", "runtime_version": "1.0", "allow_untested_runtime": "1"})
    # and is strict about its value: anything but 1/true/True leaves the gate on
    with pytest.raises(ValueError, match="not a tested runtime version"):
        _native({"runtime": "tensorflow", "runtime_version": "9.9", "allow_untested_runtime": "yes"})


@pytest.mark.skipif(not HAS_LITERT, reason="ai_edge_litert not installed")
def test_library_gate_through_litert_loader():
    from ai_edge_litert.interpreter import load_delegate

    with pytest.raises(ValueError, match="ai_edge_litert 2.9.9 is not a tested runtime version"):
        load_delegate(runtime.library_path(), {"runtime": "ai_edge_litert", "runtime_version": "2.9.9"})


def test_tested_runtimes_come_from_the_library():
    """One table: the library's string, parsed; the runtimes installed here are in it,
    and the Python gate refuses what the library refuses."""
    listed = runtime._c_api().sbnn_delegate_tested_runtimes().decode().split(",")
    table = runtime.tested_runtimes()
    assert sum(len(v) for v in table.values()) == len(listed) and set(runtime.RUNTIMES) <= set(table)
    assert runtime.TESTED_RUNTIMES == table
    assert tf.__version__ in table["tensorflow"]
    assert importlib.metadata.version("ai-edge-litert") in table["ai_edge_litert"]
    assert runtime._c_api().sbnn_delegate_version().decode() == sbnn_runtime.__version__


# ---- a library that is not the delegate --------------------------------------------


def test_library_that_is_not_the_delegate(monkeypatch, tmp_path):
    path = None
    for cand in ("/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6",
                 "/lib/aarch64-linux-gnu/libm.so.6"):
        if Path(cand).is_file():
            path = cand
    if path is None:
        pytest.skip("no libm.so.6 found")
    monkeypatch.setenv("SBNN_DELEGATE_LIB", path)
    with pytest.raises(RuntimeError, match=r"is not the sbnn delegate library .*sbnn_delegate_kernels"):
        runtime.load_delegate()
    text = tmp_path / "libsbnn_delegate.so"
    text.write_text("not a library")
    monkeypatch.setenv("SBNN_DELEGATE_LIB", str(text))
    with pytest.raises(OSError, match="libsbnn_delegate.so"):
        runtime.available_kernels()
    monkeypatch.setenv("SBNN_DELEGATE_LIB", str(tmp_path / "missing.so"))
    with pytest.raises(FileNotFoundError, match="missing.so"):
        runtime.Interpreter(_quant_model())


# ---- simulated ABI mismatches: a fake runtime calls the delegate's Prepare ---------

# The declared layout (tflite/abi/tflite_abi.h), as offsets; variants change it.
DECLARED = {
    "tensor_stride": 112,
    "tensor": {"type": 0, "data": 8, "dims": 16, "allocation_type": 32, "bytes": 40},
    "node": {"inputs": 0, "outputs": 8, "custom_initial_data_size": 56},
    "registration": {"builtin_code": 40, "custom_name": 48},
    "context": {"tensors_size": 0, "GetExecutionPlan": 8, "tensors": 16, "ResizeTensor": 32,
                "ReportError": 40, "GetNodeAndRegistration": 56,
                "ReplaceNodeSubsetsWithDelegateKernels": 64},
}

GET_PLAN = C.CFUNCTYPE(C.c_int, C.c_void_p, C.POINTER(C.c_void_p))
GET_NODE = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_int, C.POINTER(C.c_void_p), C.POINTER(C.c_void_p))
RESIZE = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_void_p, C.c_void_p)
REPLACE = C.CFUNCTYPE(C.c_int, C.c_void_p)  # never called here (no node is claimed)


@pytest.fixture(scope="module")
def report_shim(tmp_path_factory):
    """ReportError is variadic: a 6-line C function formats it with vsnprintf into a
    buffer the test reads (a ctypes callback would only see the format)."""
    d = tmp_path_factory.mktemp("shim")
    src = d / "shim.c"
    src.write_text(
        "#include <stdarg.h>\n#include <stdio.h>\n#include <string.h>\n"
        "char sbnn_shim_buf[4096];\n"
        "void sbnn_shim_report(void* ctx, const char* fmt, ...) {\n"
        "  size_t n = strlen(sbnn_shim_buf); va_list a; va_start(a, fmt);\n"
        "  vsnprintf(sbnn_shim_buf + n, sizeof(sbnn_shim_buf) - n, fmt, a); va_end(a);\n}\n"
    )
    so = d / "libshim.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", str(src), "-o", str(so)], check=True)
    return C.CDLL(str(so))


class FakeRuntime:
    """A TfLiteContext with two tensors (a float32 [1, 4] and an int32 [3] constant)
    and one custom node (MyCustomOp: constant -> tensor 0), laid out as `layout` says. The delegate
    claims no node, so its Prepare succeeds iff its ABI check accepts the context."""

    def __init__(self, layout, shim, tensors_size=2, null_callback=None, rank=1):
        self.keep = []
        self.replaced = 0
        self.shim = shim
        lt, ln, lr, lc = layout["tensor"], layout["node"], layout["registration"], layout["context"]
        stride = layout["tensor_stride"]
        dims = [self._int_array([1, 4]), self._int_array([3] * rank)]
        const = self._buffer(struct.pack("<3i", 1, 2, 3))
        data = self._buffer(struct.pack("<4f", 1.5, -2.0, 0.25, 3.0))
        self.tensors = self._buffer(bytes(stride * 2 + 128))
        for i, (typ, buf, alloc, nbytes) in enumerate([(1, data, 2, 16), (2, const, 1, 12)]):
            base = C.addressof(self.tensors) + i * stride
            self._put(base + lt["type"], "<i", typ)
            self._put(base + lt["data"], "<Q", C.addressof(buf))
            self._put(base + lt["dims"], "<Q", C.addressof(dims[i]))
            self._put(base + lt["allocation_type"], "<i", alloc)
            self._put(base + lt["bytes"], "<Q", nbytes)
        self.node = self._buffer(bytes(96))
        # the node reads the constant and writes tensor 0 (a graph that passes the
        # delegate's graph check: a node reading its own output would not)
        self._put(C.addressof(self.node) + ln["inputs"], "<Q", C.addressof(self._int_array([1])))
        self._put(C.addressof(self.node) + ln["outputs"], "<Q", C.addressof(self._int_array([0])))
        # A custom op the delegate does not claim; TfLiteRegistration's first members
        # are the kernel's callbacks (any code address will do).
        self.reg = self._buffer(bytes(96))
        self.name = self._buffer(b"MyCustomOp\0")
        code = C.cast(shim.sbnn_shim_report, C.c_void_p).value
        for off in (0, 8, 16, 24):
            self._put(C.addressof(self.reg) + off, "<Q", code)
        if "inserted" in lr:
            self._put(C.addressof(self.reg) + lr["inserted"], "<Q", code)
        self._put(C.addressof(self.reg) + lr["builtin_code"], "<i", 32)  # BuiltinOperator_CUSTOM
        self._put(C.addressof(self.reg) + lr["custom_name"], "<Q", C.addressof(self.name))
        self.plan = self._int_array([0])

        def get_plan(ctx, out):
            out[0] = C.addressof(self.plan)
            return 0

        def get_node(ctx, index, node_out, reg_out):
            if index != 0:
                return 1
            node_out[0] = C.addressof(self.node)
            reg_out[0] = C.addressof(self.reg)
            return 0

        def replace(ctx):
            self.replaced += 1
            return 1

        callbacks = {
            "GetExecutionPlan": C.cast(GET_PLAN(get_plan), C.c_void_p).value,
            "GetNodeAndRegistration": C.cast(GET_NODE(get_node), C.c_void_p).value,
            "ResizeTensor": C.cast(RESIZE(lambda ctx, t, d: 1), C.c_void_p).value,
            "ReportError": C.cast(shim.sbnn_shim_report, C.c_void_p).value,
            "ReplaceNodeSubsetsWithDelegateKernels": C.cast(REPLACE(replace), C.c_void_p).value,
        }
        self.keep.append((get_plan, get_node, replace))
        self.ctx = self._buffer(bytes(256))
        self._put(C.addressof(self.ctx) + lc["tensors_size"], "<Q", tensors_size)
        self._put(C.addressof(self.ctx) + lc["tensors"], "<Q", C.addressof(self.tensors))
        for name, ptr in callbacks.items():
            self._put(C.addressof(self.ctx) + lc[name], "<Q", 0 if name == null_callback else ptr)

    def _buffer(self, data: bytes):
        buf = C.create_string_buffer(data, len(data))
        self.keep.append(buf)
        return buf

    def _int_array(self, values):
        return self._buffer(struct.pack(f"<i{len(values)}i", len(values), *values))

    @staticmethod
    def _put(address, fmt, value):
        C.memmove(address, struct.pack(fmt, value), struct.calcsize(fmt))

    def prepare(self):
        """(status, message) of the delegate's Prepare on this context, called the way
        a runtime calls it (delegate created with the C API)."""
        lib = runtime._c_api()

        class Options(C.Structure):
            _fields_ = [("num_threads", C.c_int), ("kernel", C.c_char_p), ("runtime", C.c_char_p),
                        ("runtime_version", C.c_char_p), ("allow_untested_runtime", C.c_int)]

        lib.sbnn_delegate_create.restype = C.c_void_p
        lib.sbnn_delegate_create.argtypes = [C.POINTER(Options)]
        lib.sbnn_delegate_delete.argtypes = [C.c_void_p]
        buf = C.c_char.in_dll(self.shim, "sbnn_shim_buf")
        C.memset(C.addressof(buf), 0, 4096)
        delegate = lib.sbnn_delegate_create(C.byref(Options(1, b"auto", b"tflite", b"2.16.2", 0)))
        assert delegate
        try:
            prepare_ptr = C.c_void_p.from_address(delegate + 8).value  # TfLiteDelegate.Prepare
            status = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_void_p)(prepare_ptr)(
                C.addressof(self.ctx), delegate
            )
        finally:
            lib.sbnn_delegate_delete(delegate)
        return status, C.string_at(C.addressof(buf)).decode(errors="replace")


def _variant(**changes):
    import copy

    layout = copy.deepcopy(DECLARED)
    layout.update(changes)
    return layout


def test_declared_layout_is_accepted(report_shim):
    fake = FakeRuntime(DECLARED, report_shim)
    assert fake.prepare() == (0, "")
    assert fake.replaced == 0


# A TFLite whose structs differ from the declared ones (as another version's might),
# the fake laid out that way, and the reason the refusal must give.
MISMATCHES = {
    # TfLiteTensor grew a field after `type`: data, dims, ... all move by 8 bytes
    "tensor_field_inserted": (
        _variant(tensor_stride=120, tensor={"type": 0, "data": 16, "dims": 24,
                                            "allocation_type": 40, "bytes": 48}), {}, "tensor 0"),
    # TfLiteTensor grew at the end: the array's stride is no longer 112
    "tensor_stride_128": (_variant(tensor_stride=128), {}, "tensor 1"),
    # TfLiteTensor shrank (a field removed)
    "tensor_stride_104": (_variant(tensor_stride=104), {}, "tensor 1"),
    # TfLiteRegistration grew a (function pointer) field before builtin_code
    "registration_field_inserted": (
        _variant(registration={"inserted": 40, "builtin_code": 48, "custom_name": 56}), {}, "node 0"),
    # ... or before custom_name, which now reads builtin_code's slot
    "registration_name_moved": (
        _variant(registration={"builtin_code": 40, "inserted": 48, "custom_name": 56}), {}, "node 0"),
    # TfLiteNode's inputs/outputs moved
    "node_fields_moved": (
        _variant(node={"inputs": 16, "outputs": 24, "custom_initial_data_size": 60}), {}, "node 0"),
    # callbacks the delegate calls are not where it expects them
    "no_replace_callback": (DECLARED, {"null_callback": "ReplaceNodeSubsetsWithDelegateKernels"},
                            "function pointer"),
    "no_node_callback": (DECLARED, {"null_callback": "GetNodeAndRegistration"}, "function pointer"),
    "no_plan_callback": (DECLARED, {"null_callback": "GetExecutionPlan"}, "function pointer"),
    # members read from the wrong place give implausible values
    "implausible_tensor_count": (DECLARED, {"tensors_size": 1 << 40}, "tensors_size"),
    "implausible_rank": (DECLARED, {"rank": 40}, "rank 40"),
}


@pytest.mark.parametrize("name", sorted(MISMATCHES))
def test_layout_mismatch_is_refused_with_a_message(report_shim, name):
    layout, kwargs, reason = MISMATCHES[name]
    fake = FakeRuntime(layout, report_shim, **kwargs)
    status, message = fake.prepare()
    assert status == 1, f"{name}: a mismatched context was accepted"
    assert fake.replaced == 0
    assert "does not look like the declared ABI" in message and reason in message, message
