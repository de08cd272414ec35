"""End to end: Keras + larq + sbnn_keras models -> .tflite -> every runtime agrees.

Six binary architectures (ResNet-style with float shortcuts, VGG-style with a
binary max-pool, grouped binary convs, an SBNN model with {alpha, beta} kernels
and Si-BNN inputs, a model ending with binary dense layers, a QuickNet-style model
with pad value 1 and ReLU between the binary conv and its BatchNorm) are converted

* by LCE's converter directly (the plain-larq models only: LCE leaves
  {alpha, beta} layers as float CONV_2D, see docs/conversion.md), and
* by ``sbnn_keras.convert`` with the flavors ``"lce"``, ``"sparse"`` and ``"auto"``,

and run by our delegate in ``tf.lite.Interpreter`` and ``ai_edge_litert`` with 1
and 2 threads (kernel "auto": dense or sparse per layer; and the reference kernel),
by LCE's reference interpreter (``use_reference_bconv=True``, the
oracle), by LCE's optimized interpreter, and by Keras.

Why the tolerances can be tight. A binary network is discontinuous: a float
rounding difference on a pre-sign value near 0 flips one bit, and that changes
a later float output by a whole step (2 * multiplier). So the weights, BN
statistics and inputs are drawn on a grid (``grid_randomize``): integer images,
integer float-conv weights, binary kernels in {-1, +1} or {alpha, beta} with
tau, phi in multiples of 1/2, BatchNorm with scale gamma/sqrt(var+eps) in
{+-1/2, +-1, +-3/2, +-2} and integer or half-integer means and offsets, Si-BNN
thresholds on integers. In exact arithmetic every value that is binarized then
lies on Z + 1/2 (at least 0.5 from the sign threshold or the Si-BNN threshold),
while the float error of any implementation is ~1e-7 relative (the values stay
below ~1e4), so no implementation can flip a bit. ``test_grid_margins`` checks
that claim on the Keras model itself (the smallest distance of any binarized
value to its threshold). Then every output agrees up to float reordering only,
and the tolerance is 1e-5 relative to the tensor's scale (max |value|; float32
rounding of sums of values up to ~1e4; observed <= 5e-7):

* ours vs LCE's reference interpreter, on the final output *and* on the output of
  every binary op (exposed as extra model outputs): bitpacked tensors bit for bit,
  float ones within the tolerance (the float ops, stem, shortcuts and classifier,
  run in XNNPACK in TFLite and in TFLite's builtin kernels in LCE's interpreter,
  which sum in a different order). ``test_a_flipped_weight_bit_is_caught`` checks
  that one wrong weight bit fails the comparison.
* LCE's reference interpreter vs Keras, on the final output (TensorFlow's conv and
  unfused BatchNorm round differently from the converted, BN-folded model).
* LCE's optimized interpreters (bgemm, indirect bgemm) vs its reference.

Converted models are cached in ``tests/golden/e2e/`` (named by a hash of the
builder's source, the conversion path, the converter's sources and the larq /
LCE versions); ``SBNN_REGEN_GOLDEN=1`` reconverts.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import inspect
import os
from pathlib import Path

import numpy as np
import pytest

import sbnn_keras  # noqa: F401  (before tensorflow)
import larq as lq  # noqa: E402
import larq_compute_engine as lce  # noqa: E402
import tensorflow as tf  # noqa: E402
from larq_compute_engine.tflite.python.interpreter import Interpreter as LceInterpreter  # noqa: E402

import sbnn_runtime as runtime
from sbnn_runtime.tflite_model import read_tflite  # noqa: E402

HAS_LITERT = importlib.util.find_spec("ai_edge_litert") is not None
RUNTIMES = ["tensorflow"] + (["ai_edge_litert"] if HAS_LITERT else [])
GOLDEN_DIR = Path(__file__).parent / "golden" / "e2e"
#: float reordering only (see the module docstring), relative to max |output|
RTOL_SCALE = 1e-5
#: how far (at least) every binarized value must be from its threshold
MIN_MARGIN = 0.25
BATCH = 3

# ---- grid-valued weights -------------------------------------------------------
#
# The builder tags each BatchNormalization with the kind of values it receives and
# the kind it must produce (the `roles` dict, values "<in>-><out>"):
#   in  "even":  a binary conv's dot with {-1, +1} kernels (even integers: all
#                channel counts are even, so every window sums an even count)
#       "int":   Z (an SBNN conv with tau, phi in 1/2 Z, or a sum of two Z + 1/2)
#       "halfz": 1/2 Z (closed-form {alpha, beta} in 1/2 Z, or Si-BNN {0, 1} inputs)
#       "half":  Z + 1/2 (float convs, the residual stream)
#   out "int":   Z (a residual branch added to the Z + 1/2 stream)
#       "half":  Z + 1/2 (anything that is binarized next)
_BN_SCALES = {"even": (0.5, 1.0, 1.5, 2.0), "int": (1.0, 2.0), "halfz": (2.0,), "half": (1.0,)}


def _bn_weights(role, n, rng, eps):
    """gamma, beta, mean, var with gamma/sqrt(var+eps) in _BN_SCALES (signs random)."""
    kind_in, kind_out = role.split("->")
    sign = np.where(rng.uniform(size=n) < 0.25, -1.0, 1.0)
    scale = sign * rng.choice(_BN_SCALES[kind_in], n)
    mean = rng.integers(-3, 4, n) * (2.0 if kind_in == "even" else 1.0)
    # scale * (x - mean) is in Z + 1/2 for "half" input, in Z otherwise
    beta = rng.integers(-2, 3, n) + (0.5 if (kind_in == "half") != (kind_out == "half") else 0.0)
    u = rng.choice([0.5, 1.0, 2.0], n)  # var = u^2 - eps, gamma = scale * u
    return [a.astype(np.float32) for a in (scale * u, beta, mean, u * u - eps)]


def grid_randomize(model, roles, seed=0, connections=None):
    """Grid-valued weights (module docstring). `connections`: share of +1 binary weights."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.set_weights(_bn_weights(roles[layer.name], n, rng, layer.epsilon))
        elif isinstance(layer, (lq.layers.QuantConv2D, lq.layers.QuantDense)):
            kq = layer.kernel_quantizer
            kernel = layer.kernel
            latent = getattr(kernel, "latent_variable", kernel)
            shape = latent.shape
            p = connections if connections is not None else 0.5
            wb = np.where(rng.uniform(size=shape) < p, 1.0, -1.0)
            if isinstance(kq, sbnn_keras.SbnnQuantizer) and kq.scale == "closed_form":
                # two latent values per channel: the least-squares fit is exactly them
                lo = rng.choice([-1.0, -0.5], shape[-1])
                hi = rng.choice([0.5, 1.0], shape[-1])
                w = np.where(wb > 0, hi, lo)
            else:
                w = wb * rng.uniform(0.1, 1.0, shape)
            latent.assign(w.astype(np.float32))
            if isinstance(kq, sbnn_keras.SbnnQuantizer) and kq.scale == "learned":
                m = kq.tau.shape[0] if kq.tau.shape.rank else 1
                tau = rng.choice([0.5, 1.0, 1.5], m)
                phi = rng.choice([-1.0, -0.5, 0.5, 1.0], m)
                kq.tau.assign(tau.reshape(kq.tau.shape).astype(np.float32))
                kq.phi.assign(phi.reshape(kq.phi.shape).astype(np.float32))
            iq = layer.input_quantizer
            if isinstance(iq, sbnn_keras.SiBnnQuantizer):
                t = rng.integers(-2, 3, iq.threshold.shape)
                iq.threshold.assign(t.astype(np.float32))
            if layer.use_bias:
                bias = layer.bias
                bias.assign(np.zeros(bias.shape, np.float32))
        elif isinstance(layer, tf.keras.layers.Conv2D):  # float convs
            w, b = layer.get_weights()
            w = rng.integers(-2, 3, w.shape).astype(np.float32)
            # input in Z (image) or Z + 1/2: choose b so the output is in Z + 1/2
            if roles.get(layer.name) == "image":
                b = rng.integers(-2, 3, b.shape) + 0.5
            else:
                b = rng.integers(-2, 3, b.shape) + 0.5 - 0.5 * w.reshape(-1, w.shape[-1]).sum(0)
            layer.set_weights([w, b.astype(np.float32)])
        elif isinstance(layer, tf.keras.layers.Dense):  # float classifier: anything
            w, b = layer.get_weights()
            layer.set_weights(
                [
                    rng.normal(0, 1, w.shape).astype(np.float32),
                    rng.normal(0, 1, b.shape).astype(np.float32),
                ]
            )
    return model


def image_batch(shape, batch=BATCH, seed=7):
    return np.random.default_rng(seed).integers(-4, 5, (batch, *shape)).astype(np.float32)


# ---- architectures -----------------------------------------------------------------


class _Builder:
    """Layer factories that record each BatchNorm's role (see `grid_randomize`)."""

    def __init__(self):
        self.roles = {}
        self.n = 0

    def name(self, kind):
        self.n += 1
        return f"{kind}{self.n}"

    def bn(self, x, role):
        name = self.name("bn")
        self.roles[name] = role
        return tf.keras.layers.BatchNormalization(name=name)(x)

    def fconv(self, x, filters, kernel=3, strides=1, role="half"):
        name = self.name("conv")
        self.roles[name] = role
        return tf.keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", name=name)(
            x
        )

    def bconv(self, x, filters, kernel=3, strides=1, groups=1, pad_values=0.0):
        return lq.layers.QuantConv2D(
            filters,
            kernel,
            strides=strides,
            padding="same",
            pad_values=pad_values,
            groups=groups,
            use_bias=False,
            input_quantizer="ste_sign",
            kernel_quantizer="ste_sign",
            kernel_constraint="weight_clip",
            name=self.name("bconv"),
        )(x)

    def sconv(
        self, x, filters, kernel_quantizer, input_quantizer="ste_sign", strides=1, groups=1,
        pad_values=0.0,
    ):
        return sbnn_keras.QuantConv2D(
            filters,
            3,
            strides=strides,
            padding="same",
            pad_values=pad_values,
            use_bias=False,
            groups=groups,
            kernel_quantizer=kernel_quantizer,
            input_quantizer=input_quantizer,
            name=self.name("sconv"),
        )(x)

    def stem(self, inp, filters):
        return self.bn(self.fconv(inp, filters, role="image"), "half->half")


def build_resnet():
    """Binary ResNet blocks with float shortcuts: identity and 1x1 float downsampling."""
    b = _Builder()
    inp = tf.keras.Input((16, 16, 3))
    x = b.stem(inp, 32)
    for filters, strides in ((32, 1), (64, 2), (64, 1), (128, 2), (128, 1)):
        y = b.bn(b.bconv(x, filters, strides=strides), "even->int")
        if strides != 1 or x.shape[-1] != filters:
            x = b.bn(b.fconv(x, filters, kernel=1, strides=strides), "half->half")
        x = tf.keras.layers.Add()([x, y])
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    out = tf.keras.layers.Dense(10)(x)
    return tf.keras.Model(inp, out, name="resnet"), b.roles


def build_vgg():
    """VGG-style chain; a MaxPool2D between binary convs becomes LceBMaxPool2d."""
    b = _Builder()
    inp = tf.keras.Input((16, 16, 3))
    x = b.stem(inp, 32)
    x = b.bn(b.bconv(x, 64), "even->half")
    x = tf.keras.layers.MaxPool2D(2)(x)
    x = b.bn(b.bconv(x, 64), "even->half")
    x = b.bn(b.bconv(x, 128), "even->half")
    x = tf.keras.layers.MaxPool2D(2)(x)
    x = b.bn(b.bconv(x, 128), "even->half")
    x = tf.keras.layers.MaxPool2D(2)(x)
    x = tf.keras.layers.Flatten()(x)
    out = tf.keras.layers.Dense(10)(x)
    return tf.keras.Model(inp, out, name="vgg"), b.roles


def build_grouped():
    """Grouped binary convs (2 and 4 groups of 32 and 64 channels), strided, 1x1."""
    b = _Builder()
    inp = tf.keras.Input((12, 12, 3))
    x = b.stem(inp, 64)
    x = b.bn(b.bconv(x, 64, groups=2), "even->half")
    x = b.bn(b.bconv(x, 128, groups=2, strides=2), "even->half")
    x = b.bn(b.bconv(x, 128, groups=4), "even->half")
    x = b.bn(b.bconv(x, 256, kernel=1, groups=4), "even->half")
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    out = tf.keras.layers.Dense(10)(x)
    return tf.keras.Model(inp, out, name="grouped"), b.roles


def build_sbnn():
    """SBNN layers: {alpha, beta} kernels learned per channel and per layer, closed
    form per channel, Si-BNN {0, 1} inputs (per-channel and per-layer thresholds),
    a residual, a grouped layer; sparse kernels (~10% connections)."""
    b = _Builder()
    inp = tf.keras.Input((12, 12, 3))
    x = b.stem(inp, 32)

    def learned_pc():
        return sbnn_keras.SbnnQuantizer("learned", per_channel=True)

    y = b.bn(b.sconv(x, 32, learned_pc()), "int->int")
    x = tf.keras.layers.Add()([x, y])
    closed = sbnn_keras.SbnnQuantizer("closed_form", per_channel=True)
    x = b.bn(b.sconv(x, 64, closed, strides=2), "halfz->half")
    x = b.bn(b.sconv(x, 64, learned_pc(), input_quantizer="si_bnn"), "halfz->half")
    si_layer = sbnn_keras.SiBnnQuantizer(per_channel=False)
    x = b.bn(b.sconv(x, 64, "sbnn_learned", input_quantizer=si_layer, groups=2), "halfz->half")
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    out = tf.keras.layers.Dense(10)(x)
    return tf.keras.Model(inp, out, name="sbnn"), b.roles


def build_quicknet():
    """QuickNet-style (larq-zoo's QuickNet, the layout LCE is tuned on): strided float
    stem; residual blocks of binary conv with pad value 1, ReLU *before* BatchNorm,
    added to the float stream; a transition with max-pool and a float 1x1 conv; one
    block with an SBNN layer (learned per-channel {alpha, beta}) in the same pattern."""
    b = _Builder()
    inp = tf.keras.Input((16, 16, 3))
    x = b.bn(b.fconv(inp, 32, strides=2, role="image"), "half->half")

    def block(x, conv, role):
        y = b.bn(tf.keras.layers.ReLU()(conv(x)), role)
        return tf.keras.layers.Add()([x, y])

    x = block(x, lambda t: b.bconv(t, 32, pad_values=1.0), "even->int")
    x = block(x, lambda t: b.bconv(t, 32, pad_values=1.0), "even->int")
    x = tf.keras.layers.MaxPool2D(3, strides=2, padding="same")(x)
    x = b.bn(b.fconv(x, 64, kernel=1), "half->half")
    x = block(x, lambda t: b.bconv(t, 64, pad_values=1.0), "even->int")
    learned = sbnn_keras.SbnnQuantizer("learned", per_channel=True)
    x = block(x, lambda t: b.sconv(t, 64, learned, pad_values=1.0), "int->int")
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    out = tf.keras.layers.Dense(10)(x)
    return tf.keras.Model(inp, out, name="quicknet"), b.roles


def build_dense_head():
    """Binary convs, then binary dense layers: larq's QuantDense and, last, an SBNN
    QuantDense with learned per-channel {alpha, beta} (the model's output)."""
    b = _Builder()
    inp = tf.keras.Input((8, 8, 3))
    x = b.stem(inp, 32)
    x = b.bn(b.bconv(x, 64, strides=2), "even->half")
    x = b.bn(b.bconv(x, 64, strides=2), "even->half")
    x = tf.keras.layers.Flatten()(x)
    x = lq.layers.QuantDense(
        64,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
        name="qdense",
    )(x)
    x = b.bn(x, "even->half")
    out = sbnn_keras.QuantDense(
        10,
        kernel_quantizer=sbnn_keras.SbnnQuantizer("learned", per_channel=True),
        use_bias=False,
        name="sdense",
    )(x)
    return tf.keras.Model(inp, out, name="dense_head"), b.roles


#: name -> (builder, share of +1 binary weights, converted by LCE directly)
ARCHS = {
    "resnet": (build_resnet, 0.5, True),
    "vgg": (build_vgg, 0.5, True),
    "grouped": (build_grouped, 0.5, True),
    "sbnn": (build_sbnn, 0.1, False),
    "dense_head": (build_dense_head, 0.3, True),
    "quicknet": (build_quicknet, 0.2, False),
}


def build(arch):
    builder, connections, _ = ARCHS[arch]
    tf.keras.backend.clear_session()
    model, roles = builder()
    return grid_randomize(model, roles, seed=sum(map(ord, arch)), connections=connections)


# ---- conversion (cached) -------------------------------------------------------------

#: conversion paths: LCE's converter directly, and sbnn_keras.convert per flavor
PATHS = ("lce_direct", "lce", "sparse", "auto")
_CONVERTER_SOURCES = (
    "sbnn_keras/export/convert.py",
    "sbnn_keras/export/lowering.py",
    "sbnn_keras/export/compress.py",
    "sbnn_runtime/sparse_format.py",
)


def _cache_key(arch, path):
    builder = ARCHS[arch][0]
    root = Path(sbnn_keras.__file__).parent.parent
    text = "".join(
        [inspect.getsource(f) for f in (builder, _Builder, grid_randomize, _bn_weights, build)]
        + [
            repr(ARCHS[arch][1:]),
            path,
            lq.__version__,
            importlib.metadata.version("larq-compute-engine"),
        ]
        + [(root / name).read_text() for name in _CONVERTER_SOURCES]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:10]


_MODELS: dict = {}
_CONVERTED: dict = {}


def keras_model(arch):
    if arch not in _MODELS:
        _MODELS[arch] = build(arch)
    return _MODELS[arch]


def converted(arch, path) -> bytes:
    """The .tflite bytes of `arch` converted by `path`, from tests/golden/e2e/ when cached."""
    if (arch, path) in _CONVERTED:
        return _CONVERTED[arch, path]
    file = GOLDEN_DIR / f"{arch}-{path}-{_cache_key(arch, path)}.tflite"
    if file.is_file() and os.environ.get("SBNN_REGEN_GOLDEN") != "1":
        data = file.read_bytes()
    else:
        model = keras_model(arch)
        if path == "lce_direct":
            data = lce.convert_keras_model(model)
        else:
            data = sbnn_keras.convert(model, flavor=path)
        GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
        for old in GOLDEN_DIR.glob(f"{arch}-{path}-*.tflite"):
            old.unlink()
        file.write_bytes(data)
    _CONVERTED[arch, path] = data
    return data


def cases():
    return [
        pytest.param(arch, path, id=f"{arch}-{path}")
        for arch in ARCHS
        for path in PATHS
        if path != "lce_direct" or ARCHS[arch][2]
    ]


# ---- runners ---------------------------------------------------------------------------

#: ops whose outputs are exposed as extra model outputs (compared tensor by tensor)
EXPOSED_OPS = ("LceQuantize", "LceDequantize", "LceBconv2d", "LceBMaxPool2d", "SbnnBconv2d")
#: archs whose conversion only runs batch 1 (none since the grouped reshape fix)
BATCH1_ONLY = ()


def exposed(data):
    """`data` with the output of every binary op added to the model outputs (op order),
    so the runtimes are compared layer by layer: bitpacked tensors bit for bit."""
    from _runtime_helpers import op_name, ops, read, write

    m = read(data)
    sg = m.subgraphs[0]
    outs = [int(t) for t in sg.outputs]
    for _, op in ops(m):
        if op_name(m, op) in EXPOSED_OPS:
            outs += [int(t) for t in op.outputs if int(t) not in outs]
    sg.outputs = outs
    return write(m)


def _as_list(out):
    return out if isinstance(out, list) else [out]


def run_ours(data, x, runtime_name, threads, batch1=False, kernel="auto"):
    interp = runtime.Interpreter(data, num_threads=threads, runtime=runtime_name, kernel=kernel)
    if batch1:
        per_sample = [_as_list(interp.predict(x[i : i + 1])) for i in range(len(x))]
        return [np.concatenate(parts) for parts in zip(*per_sample)], interp.describe()
    return _as_list(interp.predict(x)), interp.describe()


def run_lce(data, x, **kwargs):
    return _as_list(LceInterpreter(data, **kwargs).predict(x))


_OUTPUTS: dict = {}


def keras_outputs(arch):
    if ("keras", arch) not in _OUTPUTS:
        model = keras_model(arch)
        _OUTPUTS["keras", arch] = model(image_batch(model.input_shape[1:])).numpy()
    return _OUTPUTS["keras", arch]


def exposed_like(data, like):
    """`data` (flavor "lce") with the model outputs of ``exposed(like)`` (a sparse file of
    the same conversion), found by tensor name: a SbnnBconv2d with fused_q outputs the
    last tensor of the float ops it replaced, named ``<that tensor's name>;<conv's>``."""
    from _runtime_helpers import read, write

    m, lm = read(data), read(exposed(like))
    sg, lsg = m.subgraphs[0], lm.subgraphs[0]
    names = {bytes(t.name or b""): i for i, t in enumerate(sg.tensors)}
    outs = []
    for t in lsg.outputs:
        name = bytes(lsg.tensors[int(t)].name or b"")
        match = [n for n in names if n and (name == n or name.startswith(n + b";"))]
        assert match, name
        outs.append(names[max(match, key=len)])
    sg.outputs = outs
    return write(m)


def lce_reference_outputs(arch, path):
    """LCE's reference interpreter on the exposed conversion (on flavor "lce" for
    files with SbnnBconv2d, which LCE cannot run: same ops, same filter bits; with the
    same tensors exposed, see exposed_like)."""
    if ("ref", arch, path) not in _OUTPUTS:
        x = image_batch(keras_model(arch).input_shape[1:])
        data = converted(arch, path)
        if "SbnnBconv2d" in read_tflite(data).op_counts():
            data = exposed_like(converted(arch, "lce"), data)
        else:
            data = exposed(data)
        _OUTPUTS["ref", arch, path] = run_lce(data, x, use_reference_bconv=True)
    return _OUTPUTS["ref", arch, path]


def assert_close(actual, expected, what):
    """Float: RTOL_SCALE relative to the tensor's scale; integer (bitpacked): exact.

    Returns the largest relative error."""
    worst = 0.0
    for i, (a, e) in enumerate(zip(_as_list(actual), _as_list(expected))):
        a, e = np.asarray(a), np.asarray(e)
        assert a.shape == e.shape and a.dtype == e.dtype, (
            f"{what} output {i}: {a.shape} {a.dtype} vs {e.shape} {e.dtype}"
        )
        if a.dtype.kind != "f":
            bad = a != e
            assert not bad.any(), (
                f"{what} output {i} ({a.dtype}): {bad.sum()} of {a.size} differ (a flipped bit)"
            )
            continue
        scale = max(1.0, float(np.abs(e).max()))
        diff = np.abs(a.astype(np.float64) - e)
        err = float(diff.max())
        assert err <= RTOL_SCALE * scale, (
            f"{what} output {i}: max |difference| {err:.3g} > {RTOL_SCALE} * scale {scale:.3g} "
            f"(a flipped bit? first at {np.unravel_index(diff.argmax(), a.shape)})"
        )
        worst = max(worst, err / scale)
    return worst


# ---- tests --------------------------------------------------------------------------------


def _binary_layers(model):
    return [
        layer
        for layer in model.layers
        if isinstance(layer, (lq.layers.QuantConv2D, lq.layers.QuantDense))
        and getattr(layer.kernel_quantizer, "precision", None) == 1
    ]


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_grid_margins(arch):
    """Every binarized value of the Keras model is far from its threshold (module docstring)."""
    model = keras_model(arch)
    layers = _binary_layers(model)
    probe = tf.keras.Model(model.input, [layer.input for layer in layers])
    values = probe(image_batch(model.input_shape[1:]))
    values = values if isinstance(values, list) else [values]
    margins = []
    for layer, v in zip(layers, values):
        iq = layer.input_quantizer
        t = iq.threshold.numpy() if isinstance(iq, sbnn_keras.SiBnnQuantizer) else 0.0
        d = np.abs(v.numpy() - t)
        margins.append(float(d.min()))
        # both signs occur (the binary inputs are not constant)
        assert (v.numpy() > t).any() and (v.numpy() < t).any(), layer.name
    assert min(margins) >= MIN_MARGIN, dict(zip([layer.name for layer in layers], margins))
    assert float(np.abs(values[-1]).max()) < 1e4  # float32 error stays ~1e-3 at most


@pytest.mark.parametrize("arch,path", cases())
def test_conversion_ops(arch, path):
    """Every binary layer became a binary op, stored as the flavor says."""
    ops = read_tflite(converted(arch, path)).op_counts()
    model = keras_model(arch)
    convs = [layer for layer in _binary_layers(model)]
    n_binary = sum(ops.get(name, 0) for name in ("LceBconv2d", "SbnnBconv2d"))
    if path == "lce_direct":
        # LCE keeps QuantDense (and {alpha, beta} kernels) as float FULLY_CONNECTED
        n_dense = sum(isinstance(layer, lq.layers.QuantDense) for layer in convs)
        assert n_binary == len(convs) - n_dense, ops
        assert ops.get("FULLY_CONNECTED", 0) >= n_dense
    else:
        assert n_binary == len(convs), ops
        assert "FULLY_CONNECTED" not in ops or arch not in ("dense_head",), ops
    if path in ("lce", "lce_direct"):
        assert "SbnnBconv2d" not in ops
    if path == "sparse":
        assert ops.get("SbnnBconv2d", 0) == len(convs) and "LceBconv2d" not in ops, ops
    if path == "auto" and arch == "sbnn":
        assert ops.get("SbnnBconv2d", 0) == len(convs), ops  # ~10% connections: SBF1 is smaller
    if arch == "vgg":
        assert ops.get("LceBMaxPool2d", 0) >= 1, ops
    # the float ops are the stem, the float shortcuts, pooling and the classifier
    n_float_convs = sum(type(layer) is tf.keras.layers.Conv2D for layer in model.layers)
    assert ops.get("CONV_2D", 0) == n_float_convs, ops


@pytest.mark.parametrize("arch,path", cases())
def test_runtimes_agree(arch, path):
    """Ours (TF and LiteRT, 1 and 2 threads) = LCE reference = LCE optimized = Keras.

    The final output is compared with Keras; every binary op's output (bitpacked
    ones bit for bit) with LCE's reference interpreter."""
    data = exposed(converted(arch, path))
    x = image_batch(keras_model(arch).input_shape[1:])
    ref = lce_reference_outputs(arch, path)
    errors = {
        "lce_ref vs keras": assert_close(
            ref[0], keras_outputs(arch), f"{arch}/{path}: LCE reference vs Keras"
        )
    }
    if "SbnnBconv2d" not in read_tflite(data).op_counts():
        # LCE's optimized kernels: bgemm (no grouped convs: "not supported with this
        # kernel") and indirect bgemm
        for name, kwargs in (("lce_bgemm", {}), ("lce_indirect", {"use_indirect_bgemm": True})):
            if not kwargs and any(
                getattr(layer, "groups", 1) > 1 for layer in keras_model(arch).layers
            ):
                continue
            errors[f"{name} vs lce_ref"] = assert_close(
                run_lce(data, x, **kwargs), ref, f"{arch}/{path}: {name}"
            )
    kernels = set()
    configs = [(rt, threads, "auto") for rt in RUNTIMES for threads in (1, 2)]
    configs.append(("tensorflow", 1, "reference"))  # the portable reference kernel
    for rt, threads, kernel in configs:
        out, desc = run_ours(data, x, rt, threads, batch1=arch in BATCH1_ONLY, kernel=kernel)
        name = f"{rt} t{threads} {kernel}"
        errors[f"{name} vs lce_ref"] = assert_close(out, ref, f"{arch}/{path}: ours {name}")
        # after an invoke: "auto" chooses per layer (dense or sparse) at the first invoke
        kernels |= {line.split("kernel=")[1] for line in desc.splitlines()[1:] if "kernel=" in line}
    assert kernels, desc
    print(
        f"{arch}/{path}: {len(ref)} tensors, kernels {sorted(kernels)}, max relative error",
        {k: f"{v:.1e}" for k, v in errors.items()},
    )


def test_grouped_sbnn_batch_resize():
    data = converted("sbnn", "lce")
    x = image_batch(keras_model("sbnn").input_shape[1:])
    out = runtime.Interpreter(exposed(data)).predict(x)  # batch 3
    assert_close(out, lce_reference_outputs("sbnn", "lce"), "sbnn batch 3")


def test_a_flipped_weight_bit_is_caught():
    """Negative control: one flipped bit in the last binary conv's filter is far outside
    the tolerance (so the tolerance does not hide binary errors)."""
    from _runtime_helpers import ops, read, write

    data = converted("resnet", "lce")
    m = read(data)
    _, op = ops(m, "LceBconv2d")[-1]
    t = m.subgraphs[0].tensors[op.inputs[1]]
    words = np.frombuffer(bytes(bytearray(m.buffers[t.buffer].data)), "<u4").copy()
    words[0] ^= 1  # output channel 0, tap (0, 0), input channel 0
    m.buffers[t.buffer].data = words.view(np.uint8)
    x = image_batch(keras_model("resnet").input_shape[1:])
    out, _ = run_ours(exposed(write(m)), x, "tensorflow", 1)
    with pytest.raises(AssertionError, match="flipped bit"):
        assert_close(out, lce_reference_outputs("resnet", "lce"), "resnet with a flipped bit")
