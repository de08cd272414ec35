"""Run converted models (LCE binary ops) in stock TFLite with the sbnn delegate.

``.tflite`` files from ``larq_compute_engine.convert_keras_model`` (or
``sbnn_keras.convert``) contain LCE's custom ops (``LceQuantize``,
``LceDequantize``, ``LceBconv2d``, ``LceBMaxPool2d``; ``flavor="sparse"`` adds the
project's ``SbnnBconv2d``), which stock TFLite cannot run. ``libsbnn_delegate.so``
(built from ``tflite/``) is an external delegate that claims those nodes and runs
them with the project's kernels, inside the unmodified ``tf.lite.Interpreter`` or
``ai_edge_litert``'s interpreter.

Example:

    >>> from sbnn_runtime import Interpreter
    >>> interp = Interpreter("model.tflite", num_threads=2)   # doctest: +SKIP
    >>> y = interp.predict(x)                                   # doctest: +SKIP

or, with the runtime's own interpreter:

    >>> d = load_delegate(num_threads=2)                        # doctest: +SKIP
    >>> tf.lite.Interpreter(model_content=data, experimental_delegates=[d])  # doctest: +SKIP

The delegate declares TFLite's ABI itself, so it only runs on runtime versions
whose ABI was checked (``TESTED_RUNTIMES``); others raise
``UnsupportedRuntimeError``. See ``docs/runtime.md``.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np

from sbnn_runtime import graph, tflite_model

__all__ = [
    "RUNTIMES",
    "TESTED_RUNTIMES",
    "Interpreter",
    "UnsupportedRuntimeError",
    "available_kernels",
    "check_model",
    "describe",
    "library_path",
    "load_delegate",
    "resolve_runtime",
    "runtime_version",
    "tested_runtimes",
]

LIBRARY_NAME = "libsbnn_delegate.so"

#: the TFLite runtimes this module drives (``tf.lite`` and ``ai_edge_litert.interpreter``)
RUNTIMES = ("tensorflow", "ai_edge_litert")

_MAX_THREADS = 64
_DELEGATE_OPTION_NAMES = ("allow_untested_runtime",)


class UnsupportedRuntimeError(RuntimeError):
    """The TFLite runtime's version is not one the delegate was checked against."""


def library_path() -> str:
    """Path of ``libsbnn_delegate.so``.

    Looks, in order, at the ``SBNN_DELEGATE_LIB`` environment variable (e.g. a
    sanitizer build), the installed package (``sbnn_runtime/_native/``), and a
    development build in ``build/tflite/`` of the source tree.

    Returns:
        The path as a string.

    Raises:
        FileNotFoundError: no library was found (build it with
            ``pip install -e .`` or ``cmake -S tflite -B build/tflite && cmake --build build/tflite``).
    """
    env = os.environ.get("SBNN_DELEGATE_LIB")
    if env:
        if not Path(env).is_file():
            raise FileNotFoundError(f"SBNN_DELEGATE_LIB={env!r} is not a file")
        return env
    here = Path(__file__).resolve().parent
    candidates = [here / "_native" / LIBRARY_NAME, here.parent / "build" / "tflite" / LIBRARY_NAME]
    for c in candidates:
        if c.is_file():
            return str(c)
    raise FileNotFoundError(
        f"{LIBRARY_NAME} not found (looked in {', '.join(str(c) for c in candidates)}). "
        "Build it with `pip install -e .` (runs CMake on tflite/) or "
        "`cmake -S tflite -B build/tflite && cmake --build build/tflite -j2`, "
        "or point SBNN_DELEGATE_LIB at a build."
    )


_C_LIBS: dict = {}


def _c_api() -> ctypes.CDLL:
    """The library's C API through ctypes (the same loaded image as the plugin)."""
    path = library_path()
    lib = _C_LIBS.get(path)
    if lib is None:
        lib = ctypes.CDLL(path)
        try:
            lib.sbnn_delegate_kernels
        except AttributeError as err:
            raise RuntimeError(
                f"{path} is not the sbnn delegate library ({err}); unset SBNN_DELEGATE_LIB "
                "or point it at a build of tflite/ (libsbnn_delegate.so)"
            ) from None
        lib.sbnn_delegate_kernels.restype = ctypes.c_char_p
        lib.sbnn_delegate_version.restype = ctypes.c_char_p
        lib.sbnn_delegate_tested_runtimes.restype = ctypes.c_char_p
        lib.sbnn_delegate_describe.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        lib.sbnn_delegate_describe.restype = ctypes.c_size_t
        lib.sbnn_delegate_kernel_known.argtypes = [ctypes.c_char_p]
        lib.sbnn_delegate_kernel_known.restype = ctypes.c_int
        _C_LIBS[path] = lib
    return lib


def tested_runtimes() -> dict:
    """Runtime -> versions whose TFLite ABI the library was checked against.

    The table lives in the library (``sbnn_delegate_tested_runtimes``, next to the ABI
    declarations it vouches for), which refuses any other version; this reads it.
    ``TESTED_RUNTIMES`` is the same table as a module attribute.

    Raises:
        FileNotFoundError: the library is not built.
    """
    table: dict = {}
    for item in _c_api().sbnn_delegate_tested_runtimes().decode().split(","):
        name, _, version = item.strip().partition(" ")
        if name and version:
            table.setdefault(name, ())
            table[name] += (version,)
    return table


def __getattr__(name):
    if name == "TESTED_RUNTIMES":
        return tested_runtimes()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def available_kernels() -> list:
    """``"auto"``, ``"reference"`` and the names of the compiled bconv2d kernels.

    ``kernel=`` also accepts the start of a kernel's instruction-set part (the text
    after ``__``, e.g. ``"avx2"`` or ``"scalar"``).

    Whether a compiled kernel runs on this CPU and shape is decided per node; a
    forced kernel that cannot run makes ``allocate_tensors`` fail with a message.
    """
    names = _c_api().sbnn_delegate_kernels().decode().split(",")
    return ["auto"] + [n for n in names if n]


def runtime_version(runtime: str = "auto") -> str:
    """Version string of an installed runtime (``"tensorflow"``, ``"ai_edge_litert"`` or ``"auto"``).

    Raises:
        ValueError: unknown runtime name.
        ImportError: ``ai_edge_litert`` is not installed.
    """
    runtime = resolve_runtime(runtime)
    if runtime == "tensorflow":
        import tensorflow as tf

        return tf.__version__
    try:
        return importlib.metadata.version("ai-edge-litert")
    except importlib.metadata.PackageNotFoundError:
        try:
            pin = f"=={tested_runtimes()['ai_edge_litert'][-1]}"
        except (FileNotFoundError, KeyError, IndexError):
            pin = ""
        raise ImportError(
            f"runtime='ai_edge_litert' needs the ai-edge-litert package (pip install 'ai-edge-litert{pin}')"
        ) from None


def resolve_runtime(runtime: Any = "auto") -> str:
    """The TFLite runtime a name stands for: ``"tensorflow"`` or ``"ai_edge_litert"``.

    ``"auto"`` is the runtime already imported by this process (TensorFlow in a
    training script: one TFLite copy per process), else ai-edge-litert when installed,
    else TensorFlow. Nothing is imported to decide.

    Raises:
        ValueError: ``runtime`` is not ``"auto"`` or a name of ``RUNTIMES``.
    """
    if runtime == "auto":
        if "tensorflow" in sys.modules:
            return "tensorflow"
        if importlib.util.find_spec("ai_edge_litert") is not None:
            return "ai_edge_litert"
        return "tensorflow"
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be 'auto' or one of {sorted(RUNTIMES)}, got {runtime!r}")
    return runtime


def _check_num_threads(num_threads: Any) -> None:
    if (
        isinstance(num_threads, bool)
        or not isinstance(num_threads, (int, np.integer))
        or not 1 <= int(num_threads) <= _MAX_THREADS
    ):
        raise ValueError(
            f"num_threads must be an integer in [1, {_MAX_THREADS}], got {num_threads!r}"
        )


def _check_kernel(kernel: Any) -> None:
    if not isinstance(kernel, str):
        raise ValueError(f"kernel must be a string, got {kernel!r}")
    if not _c_api().sbnn_delegate_kernel_known(kernel.encode()):
        raise ValueError(
            f"kernel must be 'auto', 'reference', a kernel name or an instruction-set "
            f"prefix of one (compiled: {available_kernels()[1:]}), got {kernel!r}"
        )


def load_delegate(
    num_threads: int = 1,
    kernel: str = "auto",
    *,
    runtime: str = "auto",
    **options: Any,
):
    """Loads the sbnn delegate for a TFLite runtime.

    Args:
        num_threads: threads each delegated op uses (the calling thread counts), 1..64.
        kernel: binary conv kernel: ``"auto"`` (fastest supported), ``"reference"``,
            a name from ``available_kernels()``, or the full name of a sparse kernel
            (e.g. ``"bconv2d_sparse_k01__scalar"``, docs/sparse_kernels.md).
        runtime: the interpreter the delegate will be used with: ``"tensorflow"``
            (``tf.lite.Interpreter``), ``"ai_edge_litert"``
            (``ai_edge_litert.interpreter.Interpreter``) or ``"auto"`` (``resolve_runtime``).
        **options: further delegate options; only ``allow_untested_runtime=True``
            (skip the version gate, at your own risk) is accepted.

    Returns:
        The runtime's delegate object, for ``experimental_delegates=[...]``.

    Raises:
        ValueError: an argument is invalid (the message names it and its value),
            or the library refused the options.
        UnsupportedRuntimeError: the runtime's version is not in ``TESTED_RUNTIMES``.
        FileNotFoundError: the library is not built.

    Example:

        >>> d = load_delegate(num_threads=2)                     # doctest: +SKIP
        >>> interp = tf.lite.Interpreter(model_content=data,
        ...                              experimental_delegates=[d])  # doctest: +SKIP
    """
    runtime = resolve_runtime(runtime)
    _check_num_threads(num_threads)
    _check_kernel(kernel)
    for key in options:
        if key not in _DELEGATE_OPTION_NAMES:
            raise ValueError(
                f"unknown delegate option {key!r} (known: num_threads, kernel, runtime, "
                f"{', '.join(_DELEGATE_OPTION_NAMES)})"
            )
    allow_untested = options.get("allow_untested_runtime", False)
    if not isinstance(allow_untested, (bool, np.bool_)):
        raise ValueError(f"allow_untested_runtime must be True or False, got {allow_untested!r}")
    version = runtime_version(runtime)
    tested = tested_runtimes().get(runtime, ())
    if version not in tested and not allow_untested:
        raise UnsupportedRuntimeError(
            f"{runtime} {version} is not a runtime version the sbnn delegate was checked "
            f"against (tested: {runtime} {', '.join(tested)}). The delegate "
            "declares TFLite's ABI itself and refuses other versions; install a tested "
            "version (see docs/runtime.md)."
        )
    native_options = {
        "num_threads": str(int(num_threads)),
        "kernel": kernel,
        "runtime": runtime,
        "runtime_version": version,
    }
    if allow_untested:
        native_options["allow_untested_runtime"] = "1"
    path = library_path()
    if runtime == "tensorflow":
        import tensorflow as tf

        loader = tf.lite.experimental.load_delegate
    else:
        from ai_edge_litert.interpreter import load_delegate as loader
    try:
        return loader(path, native_options)
    except ValueError as err:
        message = str(err)
        if "not a tested runtime version" in message:
            raise UnsupportedRuntimeError(message) from None
        raise ValueError(f"the sbnn delegate refused to load: {message}") from None


_ELEMENT_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 9: 1, 10: 8, 11: 16, 16: 4}


def check_model(content: bytes, runtime: str = "auto") -> None:
    """Structural check of a ``.tflite`` flatbuffer before a runtime reads it.

    The TFLite Python interpreters build the model without verifying the buffer,
    so a truncated or corrupted file can crash the process. This decodes every
    table (Python's bounds checks turn bad offsets into exceptions) and checks
    that tensor, buffer and opcode indices are in range and constant buffers are
    as large as their tensors' shapes; then the graph (``sbnn_runtime.graph``):
    ops in an order TFLite can run (no op reading its own output or a tensor
    written later), each tensor written once, no empty or oversized tensor, and
    convolutions and poolings whose strides, dilations and windows are in range
    and whose declared output shapes are what their inputs give. Graphs that break
    these rules crash TFLite 2.16 (its graph partitioner, XNNPACK's pooling), so a
    file that passes is one the stock runtimes with the sbnn delegate can load. A
    model with TensorFlow-only (Flex) ops is only given to TensorFlow's interpreter.

    Raises:
        ValueError: the content is not a well-formed model, or needs Flex ops the
            runtime lacks; the message says why (for a graph error: the op, its index
            and the tensor; for Flex ops: their names).
    """
    runtime = resolve_runtime(runtime)
    if not isinstance(content, (bytes, bytearray, memoryview)):
        raise ValueError(f"check_model: argument `content` must be bytes, got {type(content).__name__}")
    if len(content) < 8 or bytes(content[4:8]) != b"TFL3":
        raise ValueError("not a .tflite flatbuffer (no 'TFL3' file identifier at offset 4)")
    schema = tflite_model.schema()
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(bytearray(content), 0))
    except Exception as err:  # noqa: BLE001 - any decoding failure means a bad file
        raise ValueError(
            f"the .tflite flatbuffer is truncated or corrupted ({type(err).__name__}: {err})"
        ) from None
    _check_flex_ops(model, runtime)
    buffers = model.buffers or []
    n_codes = len(model.operatorCodes or [])
    if not model.subgraphs:
        raise ValueError("the .tflite model has no subgraph")

    def bad(msg):
        raise ValueError(f"the .tflite model is inconsistent: {msg}")

    for g, sg in enumerate(model.subgraphs):
        tensors = sg.tensors or []
        n_t = len(tensors)
        for i, t in enumerate(tensors):
            shape = [] if t.shape is None else [int(d) for d in t.shape]
            if any(d < 0 for d in shape):
                bad(f"subgraph {g} tensor {i} has shape {shape}")
            if not 0 <= t.buffer < max(1, len(buffers)):
                bad(f"subgraph {g} tensor {i} refers to buffer {t.buffer} of {len(buffers)}")
            buf = buffers[t.buffer] if buffers else None
            data = None if buf is None else buf.data
            if buf is not None and (buf.offset or 0) > 1:
                if buf.offset + (buf.size or 0) > len(content):
                    bad(f"buffer {t.buffer} lies outside the file")
            elif data is not None and len(data) > 0 and t.type in _ELEMENT_BYTES:
                need = int(np.prod(shape, dtype=np.int64)) * _ELEMENT_BYTES[t.type]
                if len(data) < need:
                    bad(f"subgraph {g} tensor {i}: buffer of {len(data)} bytes for {need}")
        for name, idx in (("input", sg.inputs), ("output", sg.outputs)):
            for k in [] if idx is None else idx:
                if not 0 <= k < n_t:
                    bad(f"subgraph {g} {name} tensor {k} of {n_t}")
        for j, op in enumerate(sg.operators or []):
            if not 0 <= op.opcodeIndex < n_codes:
                bad(f"subgraph {g} op {j} has opcode index {op.opcodeIndex} of {n_codes}")
            for k in list([] if op.inputs is None else op.inputs) + list(
                [] if op.outputs is None else op.outputs
            ):
                if not -1 <= k < n_t:
                    bad(f"subgraph {g} op {j} refers to tensor {k} of {n_t}")
        graph.validate(model, g)


def _check_flex_ops(model, runtime: str) -> None:
    """Flex ops (TensorFlow kernels inside a .tflite) run only in TensorFlow's interpreter."""
    flex = sorted({
        code.customCode.decode("utf-8", "replace")
        for code in model.operatorCodes or []
        if code.customCode and code.customCode.startswith(b"Flex")
    })
    if flex and runtime != "tensorflow":
        raise ValueError(
            f"the model needs TensorFlow-only (Flex) ops: {', '.join(flex)}; {runtime} cannot run "
            "them. Run it with runtime='tensorflow' (a full TensorFlow install) or convert the "
            "model without TensorFlow ops (no SELECT_TF_OPS)."
        )


def describe(delegate) -> str:
    """What a delegate claimed: one line per LCE node, with the bconv2d kernel used."""
    if not callable(getattr(delegate, "_get_native_delegate_pointer", None)):
        raise ValueError(f"describe: argument `delegate` must come from load_delegate(), got {delegate!r}")
    ptr = delegate._get_native_delegate_pointer()  # pylint: disable=protected-access
    lib = _c_api()
    n = lib.sbnn_delegate_describe(ptr, None, 0)
    buf = ctypes.create_string_buffer(n + 1)
    lib.sbnn_delegate_describe(ptr, buf, n + 1)
    return buf.value.decode()


ModelSource = Union[bytes, bytearray, memoryview, str, os.PathLike]


class Interpreter:
    """A TFLite interpreter with the sbnn delegate, for models with LCE ops.

    Args:
        model_content_or_path: the ``.tflite`` flatbuffer (bytes) or a path to it.
        num_threads: threads for the delegated binary ops and for TFLite's own ops, 1..64.
        kernel: binary conv kernel (see ``load_delegate``).
        runtime: ``"tensorflow"``, ``"ai_edge_litert"`` or ``"auto"`` (keyword only;
            ``resolve_runtime``).

    Raises:
        ValueError: an argument is invalid, or the model cannot be read.
        UnsupportedRuntimeError: the runtime's version was never checked.
        RuntimeError: the runtime or the delegate rejected the model (the message
            says which node and why).

    Example:

        >>> interp = Interpreter(converted_bytes, num_threads=2)  # doctest: +SKIP
        >>> probs = interp.predict(images)                        # doctest: +SKIP
    """

    def __init__(
        self,
        model_content_or_path: ModelSource,
        num_threads: int = 1,
        kernel: str = "auto",
        *,
        runtime: str = "auto",
    ):
        runtime = resolve_runtime(runtime)
        _check_num_threads(num_threads)
        _check_kernel(kernel)
        if isinstance(model_content_or_path, (bytes, bytearray, memoryview)):
            content = bytes(model_content_or_path)
        elif isinstance(model_content_or_path, (str, os.PathLike)):
            path = Path(model_content_or_path)
            if not path.is_file():
                raise ValueError(f"model_content_or_path: no file at {str(path)!r}")
            content = path.read_bytes()
        else:
            raise ValueError(
                "model_content_or_path must be bytes or a path, got "
                f"{type(model_content_or_path).__name__}"
            )
        if len(content) < 8:
            raise ValueError(f"model_content_or_path: {len(content)} bytes is not a .tflite model")
        try:
            check_model(content, runtime)
        except ValueError as err:
            raise ValueError(f"model_content_or_path: {err}") from None
        self._delegate = load_delegate(num_threads, kernel, runtime=runtime)
        if runtime == "tensorflow":
            import tensorflow as tf

            interpreter_cls = tf.lite.Interpreter
        else:
            from ai_edge_litert.interpreter import Interpreter as interpreter_cls
        self._content = content  # the interpreter reads the buffer in place
        self._runtime = runtime
        self._interpreter_cls = interpreter_cls
        self._num_threads = int(num_threads)
        self._interpreter = self._create()
        self._signatures = [
            tuple(int(s) for s in d.get("shape_signature", d["shape"])) for d in self._interpreter.get_input_details()
        ]
        self._allocate()

    def _create(self):
        try:
            return self._interpreter_cls(
                model_content=self._content,
                num_threads=self._num_threads,
                experimental_delegates=[self._delegate],
            )
        except ValueError as err:
            raise ValueError(f"model_content_or_path: cannot load the model: {err}") from None

    def _allocate(self) -> None:
        try:
            self._interpreter.allocate_tensors()
        except RuntimeError as err:
            raise RuntimeError(f"the model cannot run with the sbnn delegate: {err}") from None

    def _recover(self) -> None:
        # TF 2.16's interpreter is not safe to use after a failed resize/prepare (the
        # next call may crash in XNNPACK or the arena planner): start from a new one.
        self._interpreter = self._create()
        self._allocate()

    @property
    def interpreter(self):
        """The underlying ``tf.lite.Interpreter`` (or LiteRT interpreter)."""
        return self._interpreter

    @property
    def input_details(self) -> list:
        """``get_input_details()`` of the underlying interpreter (current shapes)."""
        return self._interpreter.get_input_details()

    @property
    def output_details(self) -> list:
        """``get_output_details()`` of the underlying interpreter (current shapes)."""
        return self._interpreter.get_output_details()

    def describe(self) -> str:
        """The delegated nodes and the bconv2d kernel each uses."""
        return describe(self._delegate)

    def predict(self, x: Union[np.ndarray, Sequence[np.ndarray]]):
        """Runs the model on a batch.

        Args:
            x: one array (single-input model) or a list of arrays, each with the
                batch on axis 0. The batch size may differ from the model's, and so
                may any dimension the model declares dynamic (``-1`` in
                ``input_details[i]["shape_signature"]``, e.g. H and W of a model
                built with ``Input((None, None, 3))``): the inputs are resized and
                the delegate re-prepares its nodes. Arrays are cast to the input
                dtype; float data for an int8 input is quantized with the input's
                scale and zero point. Values must be real numbers and finite: NaN
                or infinity has no sign for the binary layers, so such input is
                refused rather than run to an arbitrary answer.

        Returns:
            The output array (single output) or a list of arrays, in the output
            dtype (int8 outputs stay quantized; see ``output_details``).

        Raises:
            ValueError: wrong number of inputs, mismatched shapes, an empty batch
                (or any dimension 0), non-numeric or non-finite values.
            RuntimeError: the runtime failed (message from TFLite / the delegate).
                The interpreter stays usable: after a failed resize or invoke it is
                rebuilt before the error is raised.
        """
        details = self.input_details
        arrays = [x] if isinstance(x, np.ndarray) or not isinstance(x, (list, tuple)) else list(x)
        if len(arrays) != len(details):
            raise ValueError(f"x: the model has {len(details)} inputs, got {len(arrays)} arrays")
        prepared = []
        for i, (a, d, sig) in enumerate(zip(arrays, details, self._signatures)):
            try:
                a = np.asarray(a)
            except (TypeError, ValueError) as err:
                raise ValueError(f"x[{i}]: not an array of numbers ({err})") from None
            if a.dtype.kind not in "biuf":
                raise ValueError(f"x[{i}]: values must be real numbers, got dtype {a.dtype}")
            expected = ("batch",) + tuple("any" if s < 0 else s for s in sig[1:])
            if a.ndim != len(sig) or any(s >= 0 and n != s for n, s in zip(a.shape[1:], sig[1:])):
                raise ValueError(f"x[{i}]: shape {a.shape} does not match the model input {expected}")
            if 0 in a.shape:
                raise ValueError(
                    f"x[{i}]: shape {a.shape} is empty (a batch of 0 or a dimension 0); "
                    "the model needs at least one value per dimension"
                )
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                bad = np.argwhere(~np.isfinite(a))
                raise ValueError(
                    f"x[{i}]: {len(bad)} values are not finite (NaN or infinity), the first at index "
                    f"{tuple(int(k) for k in bad[0])}: {a[tuple(bad[0])]!r}"
                )
            dtype = np.dtype(d["dtype"])
            if dtype == np.int8 and a.dtype.kind == "f":
                scale, zero_point = d["quantization"]
                a = np.clip(np.round(a / scale) + zero_point, -128, 127)
            prepared.append(np.ascontiguousarray(a, dtype=dtype))
        resized = False
        try:
            for a, d in zip(prepared, details):
                if tuple(a.shape) != tuple(int(s) for s in d["shape"]):
                    self._interpreter.resize_tensor_input(d["index"], list(a.shape), strict=False)
                    resized = True
            if resized:
                self._allocate()
        except (RuntimeError, ValueError) as err:
            self._recover()
            raise RuntimeError(f"the model cannot run on inputs of shapes {[a.shape for a in prepared]}: {err}") from None
        for a, d in zip(prepared, self.input_details):
            self._interpreter.set_tensor(d["index"], a)
        try:
            self._interpreter.invoke()
        except RuntimeError as err:
            self._recover()
            raise RuntimeError(f"invoke failed: {err}") from None
        outs = [self._interpreter.get_tensor(d["index"]) for d in self.output_details]
        return outs[0] if len(outs) == 1 else outs
