"""``sbnn_keras.export.convert``: Keras model -> .tflite with Larq Compute Engine's binary ops.

Every binary layer (SBNN or larq, conv or dense, {-1,+1} or Si-BNN {0,+1} input) is
lowered (see :mod:`sbnn_keras.export.lowering`) so that LCE's converter emits LceBconv2d
for it. The result is then read back and checked: a binary layer that would stay a
float op is an error (unless listed in ``float_layers``), never a silent fallback.
"""

from __future__ import annotations

import dataclasses
import json
import re

from sbnn_keras import _compat

_compat.ensure_legacy_keras()

import larq as lq  # noqa: E402
import numpy as np  # noqa: E402
import larq_compute_engine as lce  # noqa: E402
import tensorflow as tf  # noqa: E402

from sbnn_keras import quantizers as sbnn_quantizers  # noqa: E402
from sbnn_keras.export import compress, lowering  # noqa: E402
from sbnn_runtime.tflite_model import TFLiteGraph, read_tflite  # noqa: E402

__all__ = [
    "ConversionError", "ConversionReport", "LayerConversion", "convert", "convert_with_report",
    "declare_quantizer",
]

FLAVORS = ("lce", "sparse", "auto")
FLOAT_COMPUTE_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "TRANSPOSE_CONV"}
BINARY_OPS = {"LceBconv2d", compress.SPARSE_OP}


class ConversionError(ValueError):
    """The model cannot be converted as asked (the message names the layer)."""


@dataclasses.dataclass
class LayerConversion:
    """One Keras layer and the TFLite operators it became."""

    name: str
    class_name: str
    binary: bool
    lowered: bool
    ops: list[str]
    storage: list[dict] = dataclasses.field(default_factory=list)

    @property
    def status(self) -> str:
        if not self.binary:
            return "float"
        if any(op in BINARY_OPS for op in self.ops):
            return "binary"
        return "STAYED FLOAT" if any(op in FLOAT_COMPUTE_OPS for op in self.ops) else "no binary op"


@dataclasses.dataclass
class ConversionReport:
    """Which TFLite ops each Keras layer became, and the model's op counts."""

    model_name: str
    flavor: str
    layers: list[LayerConversion]
    op_counts: dict[str, int]
    size_bytes: int
    unattributed_ops: list[str]

    def to_dict(self) -> dict:
        return {
            "model_name": self.model_name,
            "flavor": self.flavor,
            "size_bytes": self.size_bytes,
            "op_counts": self.op_counts,
            "unattributed_ops": self.unattributed_ops,
            "layers": [{**dataclasses.asdict(layer), "status": layer.status} for layer in self.layers],
        }

    def to_json(self, path=None, indent: int = 2) -> str:
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text + "\n")
        return text

    def __str__(self) -> str:
        rows = [("Layer", "Class", "Status", "Weights", "TFLite ops")]
        for layer in self.layers:
            weights = "; ".join(
                f"{s['format']} {s['bits_per_weight']:.3f} b/w (p={s['connections']:.3f})"
                + (f", {len(s['fused_ops'])} float ops fused" if s.get("fused_ops") else "")
                for s in layer.storage
            )
            rows.append(
                (layer.name, layer.class_name, layer.status, weights or "-", ", ".join(layer.ops) or "-")
            )
        widths = [max(len(str(r[i])) for r in rows) for i in range(5)]
        line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
        out = [f"Conversion report: {self.model_name} (flavor {self.flavor!r}, {self.size_bytes:,} bytes)", line]
        for i, row in enumerate(rows):
            out.append("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")
            if i == 0:
                out.append(line)
        out.append(line)
        out.append("Op counts: " + ", ".join(f"{k} x{v}" for k, v in sorted(self.op_counts.items())))
        n = sum(int(np.prod(s["filter_shape"])) for layer in self.layers for s in layer.storage)
        if n:
            stored = sum(s["stored_bytes"] for layer in self.layers for s in layer.storage)
            out.append(
                f"Binary filters: {n:,} weights in {stored:,} bytes ({8 * stored / n:.3f} bits/weight)"
            )
        return "\n".join(out)

    def print(self, print_fn=print):
        print_fn(str(self))


def _short_names(model):
    """Map original layer -> short unique name, so op names in the flatbuffer (which
    the converter truncates) still carry every layer they came from."""
    return {id(layer): f"L{i}" for i, layer in enumerate(model.layers)}


_QUANTIZER_ATTRS = ("input_quantizer", "kernel_quantizer", "depthwise_quantizer", "pointwise_quantizer")


_LIBRARIES = ("larq", "sbnn_keras")
# Classes whose forward pass was declared equal to their library base's (declare_quantizer).
_DECLARED: set = set()


def _library_base(cls):
    """The nearest larq or sbnn_keras quantizer class ``cls`` derives from, or None."""
    for base in cls.__mro__[1:]:
        if base.__module__.split(".")[0] in _LIBRARIES and issubclass(base, lq.quantizers.Quantizer):
            return base
    return None


def declare_quantizer(cls):
    """Class decorator: ``cls`` computes in its forward pass exactly what its larq or
    sbnn_keras base class computes (it may change the backward pass, its variables or
    its schedule), so ``convert`` lowers it as that base.

    Without it ``convert`` refuses a user quantizer class, since a subclass that
    overrides ``call`` may compute anything. The declaration covers ``cls`` only, not
    its own subclasses.

    Raises:
        TypeError: ``cls`` is not a class deriving from a larq or sbnn_keras quantizer.

    Example:
        >>> import larq as lq
        >>> @declare_quantizer
        ... class MySign(lq.quantizers.SteSign):  # sign forward, own gradient
        ...     pass
    """
    if not isinstance(cls, type) or _library_base(cls) is None:
        raise TypeError(
            f"declare_quantizer: argument `cls` must be a class deriving from a larq or "
            f"sbnn_keras quantizer, got {cls!r}"
        )
    _DECLARED.add(cls)
    return cls


def _known_quantizer(q) -> bool:
    """A larq or sbnn_keras quantizer (object or function), or an object of a class
    declared with ``declare_quantizer``: convert knows what it computes."""
    if isinstance(q, lq.quantizers.Quantizer):
        return type(q).__module__.split(".")[0] in _LIBRARIES or type(q) in _DECLARED
    known = list(vars(lq.quantizers).values()) + list(vars(sbnn_quantizers).values())
    return callable(q) and any(q is f for f in known)


def _check_quantizers(layer, float_layers) -> None:
    """Refuses what would otherwise convert silently to something else: quantizers
    convert cannot identify (a lambda, a user class), and binary depthwise or
    separable kernels (no binary TFLite op computes them: they would run as float
    ops). ``float_layers`` keeps such a layer float on purpose."""
    if layer.name in float_layers:
        return
    keep = f"or keep the layer float on purpose with float_layers=[{layer.name!r}]"
    for attr in _QUANTIZER_ATTRS:
        q = getattr(layer, attr, None)
        if q is not None and not _known_quantizer(q):
            raise ConversionError(
                f"convert: layer {layer.name!r} ({type(layer).__name__}): {attr} {q!r} is not a "
                f"larq or sbnn_keras quantizer, so convert cannot tell what it computes; use one of "
                f"theirs, declare a subclass whose forward is its base's with "
                f"sbnn_keras.declare_quantizer, {keep}."
            )
    for attr in ("depthwise_quantizer", "pointwise_quantizer"):
        q = getattr(layer, attr, None)
        if q is not None and lowering._precision(q) == 1:  # pylint: disable=protected-access
            raise ConversionError(
                f"convert: layer {layer.name!r} ({type(layer).__name__}) has a binary "
                f"{attr.split('_')[0]} kernel, but no binary TFLite op computes depthwise or "
                f"separable convolutions (it would run as a float op); use QuantConv2D, {keep}."
            )


def _lower(model, float_layers):
    if not isinstance(model, (tf.keras.Sequential,)) and not getattr(model, "_is_graph_network", False):
        raise ConversionError(
            f"convert: model {model.name!r} is a subclassed Keras model; only Sequential and "
            "functional models can be converted (their layer graph is needed)."
        )
    short = _short_names(model)
    binary_names = []
    lowered_names = []

    def clone(layer):
        name = short[id(layer)]
        _check_quantizers(layer, float_layers)
        if isinstance(layer, tf.keras.Model):
            raise ConversionError(
                f"convert: nested model {layer.name!r}: flatten nested models into one "
                "functional model before converting."
            )
        inner = [
            sub.name
            for sub in layer._flatten_layers(include_self=False, recursive=True)
            if lowering.is_binary_layer(sub)
        ]
        if inner:
            raise ConversionError(
                f"convert: layer {layer.name!r} ({type(layer).__name__}) contains binary layers "
                f"{inner}; convert cannot rewrite inside custom layers. Build the model from "
                "Keras/larq/sbnn_keras layers directly (functional API)."
            )
        if lowering.is_binary_layer(layer) and layer.name not in float_layers:
            binary_names.append(layer.name)
            native = (
                isinstance(layer, lq.layers.QuantConv2D)
                and isinstance(layer.kernel_quantizer, lowering._SIGN_QUANTIZERS)
                and isinstance(layer.input_quantizer, lowering._SIGN_QUANTIZERS)
            )
            if not native:
                lowered_names.append(layer.name)
                return lowering.LoweredBinaryConv(lowering.plan_layer(layer), name=name)
        config = {**layer.get_config(), "name": name}
        return layer.__class__.from_config(config)

    try:
        lowered = tf.keras.models.clone_model(model, clone_function=clone)
    except lowering.LoweringError as err:
        raise ConversionError(f"convert: {err}") from err
    except TypeError as err:  # a layer whose config Keras cannot rebuild
        raise ConversionError(f"convert: a layer of {model.name!r} cannot be rebuilt from its config ({err})") from None
    for original, new in zip(model.layers, lowered.layers):
        if not isinstance(new, lowering.LoweredBinaryConv):
            new.set_weights(original.get_weights())
    lowered._name = "m"
    return lowered, short, set(binary_names), set(lowered_names)


_TOKEN = re.compile(r"(?:^|[;/])m/(L\d+)(?=/|;|$)")


def _attribute(graph: TFLiteGraph):
    """Short layer names found in each op's output tensor names. An op whose outputs
    carry none (e.g. the model's output, named ``StatefulPartitionedCall:0``) takes
    the names of its first input (for a binary conv: its LceQuantize, which the
    converter names after the layer)."""
    result = []
    for op in graph.ops:
        tokens = set()
        for name in op.output_names:
            tokens.update(_TOKEN.findall(name))
        if not tokens and op.inputs and op.inputs[0] >= 0:
            tokens.update(_TOKEN.findall(graph.tensor_names[op.inputs[0]]))
        result.append(tokens)
    return result


def _check_arguments(model, flavor, inference_input_type, inference_output_type, target, float_layers):
    """``float_layers`` as a tuple once every argument of :func:`convert` is valid; the
    error names the first argument that is not."""
    if not isinstance(model, tf.keras.Model):
        raise ConversionError(f"convert: argument `model` must be a tf.keras.Model, got {model!r}.")
    if (
        isinstance(float_layers, str)
        or not hasattr(float_layers, "__iter__")
        or not all(isinstance(n, str) for n in float_layers)
    ):
        raise ConversionError(
            f"convert: argument `float_layers` must be a list of layer names, got {float_layers!r}."
        )
    float_layers = tuple(float_layers)
    if flavor not in FLAVORS:
        raise ConversionError(f"convert: argument `flavor` must be one of {FLAVORS}, got {flavor!r}.")
    for arg, value in (("inference_input_type", inference_input_type), ("inference_output_type", inference_output_type)):
        if value not in (tf.float32, tf.int8):
            raise ConversionError(f"convert: argument `{arg}` must be tf.float32 or tf.int8, got {value!r}.")
    if target not in ("arm", "xcore"):
        raise ConversionError(f"convert: argument `target` must be 'arm' or 'xcore', got {target!r}.")
    names = {layer.name for layer in model.layers}
    unknown = [n for n in float_layers if n not in names]
    if unknown:
        raise ConversionError(f"convert: `float_layers` names unknown layers {unknown}.")
    if not model.built:
        raise ConversionError(f"convert: model {model.name!r} is not built; give it an Input shape.")
    return float_layers


def _layer_conversions(model, graph: TFLiteGraph, storages, short, binary, lowered_names):
    """``(layers, unattributed ops)``: each Keras layer's ops and sparse-filter storage in
    the converted ``graph``, found through the op-name tokens ``_lower`` gave them."""
    by_short = {short[id(layer)]: layer for layer in model.layers}
    layer_ops = {layer.name: [] for layer in model.layers}
    layer_storage = {layer.name: [] for layer in model.layers}
    storage_by_op = {s.op_index: s for s in storages}
    unattributed = []
    for op, tokens in zip(graph.ops, _attribute(graph)):
        if op.index in storage_by_op:
            owners = [by_short[t] for t in tokens if t in by_short and by_short[t].name in binary]
            if owners:
                info = dataclasses.asdict(storage_by_op[op.index])
                info["bits_per_weight"] = storage_by_op[op.index].bits_per_weight
                layer_storage[owners[0].name].append(info)
        if not tokens:
            unattributed.append(op.name)
        for token in sorted(tokens, key=lambda t: int(t[1:])):
            if token in by_short:
                layer_ops[by_short[token].name].append(op.name)
    layers = [
        LayerConversion(
            name=layer.name,
            class_name=type(layer).__name__,
            binary=layer.name in binary,
            lowered=layer.name in lowered_names,
            ops=layer_ops[layer.name],
            storage=layer_storage[layer.name],
        )
        for layer in model.layers
    ]
    return layers, unattributed


def convert_with_report(
    model,
    *,
    flavor: str = "lce",
    inference_input_type=tf.float32,
    inference_output_type=tf.float32,
    target: str = "arm",
    float_layers=(),
):
    """Like :func:`convert`, returning ``(tflite_bytes, ConversionReport)``."""
    float_layers = _check_arguments(
        model, flavor, inference_input_type, inference_output_type, target, float_layers
    )
    lowered, short, binary, lowered_names = _lower(model, set(float_layers))
    data = lce.convert_keras_model(
        lowered,
        inference_input_type=inference_input_type,
        inference_output_type=inference_output_type,
        target=target,
    )
    storages = []
    if flavor in ("sparse", "auto"):
        data, storages = compress.compress_filters(data, only_if_smaller=flavor == "auto", fuse_q=True)
    graph = read_tflite(data)
    layers, unattributed = _layer_conversions(model, graph, storages, short, binary, lowered_names)
    report = ConversionReport(
        model_name=model.name,
        flavor=flavor,
        layers=layers,
        op_counts=graph.op_counts(),
        size_bytes=len(data),
        unattributed_ops=unattributed,
    )
    failed = [layer for layer in layers if layer.binary and layer.status != "binary"]
    expected = sum(1 for layer in layers if layer.binary)
    n_binary_ops = sum(report.op_counts.get(name, 0) for name in BINARY_OPS)
    if failed and n_binary_ops < expected:
        raise ConversionError(
            "convert: binary layers "
            + ", ".join(f"{layer.name!r} ({layer.status.lower()}: {layer.ops or 'no ops'})" for layer in failed)
            + " did not become LceBconv2d. Keep them float on purpose with "
            "`float_layers=[...]`, or report this as a bug.\n" + str(report)
        )
    return data, report


def convert(
    model,
    *,
    flavor: str = "lce",
    inference_input_type=tf.float32,
    inference_output_type=tf.float32,
    target: str = "arm",
    float_layers=(),
) -> bytes:
    """Convert a Keras model with SBNN/larq binary layers to a TFLite flatbuffer.

    Args:
        model: a built Sequential or functional ``tf.keras.Model``.
        flavor: ``"lce"``: only Larq Compute Engine ops (runs in LCE's own runtime
            and in stock TFLite with ``sbnn_keras.load_delegate``).
            ``"sparse"``: every binary filter stored in the compact SBF1 form (near
            h(p) bits/weight) as the project's ``SbnnBconv2d`` op; needs the
            project's delegate, which picks sparse kernels for it.
            ``"auto"``: SBF1 only where it is smaller than LCE's 1 bit/weight; the
            delegate chooses the faster kernel per layer on the running machine.
        inference_input_type, inference_output_type: ``tf.float32`` or ``tf.int8``.
        target: ``"arm"`` (also right for x86) or ``"xcore"``, as in LCE.
        float_layers: names of binary layers to keep as float ops on purpose
            (e.g. a binary-weight layer with float input). Any other binary layer
            that does not become ``LceBconv2d`` is an error.

    Returns:
        The .tflite model as bytes.

    Raises:
        ConversionError: unsupported layers or options (the message names the layer
            or argument and the value), or a binary layer that stayed float.

    Example:
        >>> tflite_bytes = sbnn_keras.convert(model)  # doctest: +SKIP
    """
    data, _ = convert_with_report(
        model,
        flavor=flavor,
        inference_input_type=inference_input_type,
        inference_output_type=inference_output_type,
        target=target,
        float_layers=float_layers,
    )
    return data
