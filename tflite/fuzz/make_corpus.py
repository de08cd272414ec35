"""Writes the fuzz seed corpus (tflite/fuzz/corpus/) from real conversions.

    python tflite/fuzz/make_corpus.py            # (re)writes corpus/{model,flexbuffer,sbf1}

* ``model/``: small SBNN and larq models converted by ``sbnn_keras.convert`` in the
  ``"lce"``, ``"sparse"`` and ``"auto"`` flavours (LceQuantize, LceBconv2d with float,
  int8 and bitpacked outputs, LceBMaxPool2d, LceDequantize, SbnnBconv2d), plus the
  small LCE-converted models of the delegate's op tests (tests/golden/runtime/).
* ``flexbuffer/``: the custom options of every Lce*/Sbnn* op in those models.
* ``sbf1/``: every SBF1 filter in them, and filters written by the reference encoder
  (``sbnn_keras.sparse_format.encode_filter``) at sparsities 0..1 and odd shapes.

Deterministic (fixed seeds); the files are small (the corpus is committed). The
fuzzers add their own findings in a separate working corpus (scripts/fuzz.sh).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import sbnn_keras  # noqa: E402  (before tensorflow)
import larq as lq  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from sbnn_keras.layers import latent_kernel, sbnn_layers  # noqa: E402
from sbnn_keras.sparse_format import encode_filter  # noqa: E402
from sbnn_keras.tflite_model import read_tflite  # noqa: E402

CORPUS = Path(__file__).resolve().parent / "corpus"
CUSTOM_OPS = ("LceQuantize", "LceDequantize", "LceBconv2d", "LceBMaxPool2d", "SbnnBconv2d")


def _randomize(model, seed, connection_rate=0.3):
    """Skewed latent weights (about `connection_rate` connections) and BN statistics."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        if any(k in v.name for k in ("variance", "gamma", "tau")):
            v.assign(rng.uniform(0.5, 1.5, size=v.shape).astype("float32"))
        elif any(k in v.name for k in ("phi", "moving_mean", "beta", "threshold")):
            v.assign((rng.normal(size=v.shape) * 0.3).astype("float32"))
    for layer in sbnn_layers(model):
        w = latent_kernel(layer)
        u = rng.uniform(size=w.shape)
        w.assign(np.where(u < connection_rate, 0.5, -0.5).astype("float32") * rng.uniform(0.2, 1, w.shape))
    return model


def sbnn_net(seed, size=6, channels=(8, 40), pool=True, pad_values=0.0, padding="same", strides=1):
    """Float stem, two SBNN convs (the second after a binary max-pool), BN, dense head."""
    inp = tf.keras.Input((size, size, 3))
    x = tf.keras.layers.Conv2D(channels[0], 3, padding="same")(inp)
    x = tf.keras.layers.BatchNormalization()(x)
    x = sbnn_keras.QuantConv2D(channels[1], 3, padding=padding, pad_values=pad_values,
                               strides=strides, use_bias=False)(x)
    x = tf.keras.layers.BatchNormalization()(x)
    if pool:
        x = tf.keras.layers.MaxPool2D(2, padding="same")(x)
    x = sbnn_keras.QuantConv2D(channels[0] + 3, 3, padding="same", pad_values=1.0, use_bias=False)(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = tf.keras.layers.Dense(4)(x)
    return _randomize(tf.keras.Model(inp, x), seed)


def larq_net(seed):
    """ste_sign larq convs: LCE fuses BN into thresholds (bitpacked output) and a
    binary max-pool between them."""
    inp = tf.keras.Input((8, 8, 5))
    kw = dict(input_quantizer="ste_sign", kernel_quantizer="ste_sign",
              kernel_constraint="weight_clip", use_bias=False)
    x = lq.layers.QuantConv2D(33, 3, padding="same", pad_values=1.0, **kw)(inp)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.MaxPool2D(2)(x)
    x = lq.layers.QuantConv2D(64, 3, padding="same", pad_values=1.0, **kw)(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = lq.layers.QuantConv2D(16, 1, **kw)(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    model = tf.keras.Model(inp, x)
    rng = np.random.default_rng(seed)
    for v in model.weights:
        if "kernel" in v.name:
            v.assign(rng.uniform(-1, 1, v.shape).astype("float32"))
        elif "moving_mean" in v.name:
            v.assign(rng.normal(0, 2, v.shape).astype("float32"))
    return model


def models():
    """name -> .tflite bytes."""
    out = {}
    for flavor in ("lce", "sparse", "auto"):
        tf.keras.backend.clear_session()
        out[f"sbnn_{flavor}"] = sbnn_keras.convert(sbnn_net(1), flavor=flavor)
    tf.keras.backend.clear_session()
    out["sbnn_valid_stride2_sparse"] = sbnn_keras.convert(
        sbnn_net(2, size=7, channels=(5, 33), pool=False, padding="valid", strides=2), flavor="sparse")
    tf.keras.backend.clear_session()
    out["sbnn_int8_sparse"] = sbnn_keras.convert(
        sbnn_net(3, pad_values=1.0), flavor="sparse", inference_input_type=tf.int8,
        inference_output_type=tf.int8)
    tf.keras.backend.clear_session()
    out["larq_bitpacked_lce"] = sbnn_keras.convert(larq_net(4))
    golden = ROOT / "tests" / "golden" / "runtime"
    for stem in ("quant", "int8", "odd_zero_padding"):
        for path in sorted(golden.glob(f"{stem}-*.tflite")):
            out[f"golden_{stem}"] = path.read_bytes()
    return out


def _constant_bytes(data: bytes, tensor: int) -> bytes:
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(bytearray(data), 0))
    t = model.subgraphs[0].tensors[tensor]
    return np.asarray(model.buffers[t.buffer].data, np.uint8).tobytes()


def _write(directory: Path, name: str, data: bytes):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data)


def main():
    for sub in ("model", "flexbuffer", "sbf1"):
        for old in (CORPUS / sub).glob("*"):
            if old.name != "README.md":
                old.unlink()
    seen = set()
    for name, data in models().items():
        _write(CORPUS / "model", f"{name}.tflite", data)
        graph = read_tflite(data)
        for op in graph.ops:
            if op.name not in CUSTOM_OPS:
                continue
            if op.custom_options:
                opts = bytes(op.custom_options)
                key = hashlib.sha1(opts).hexdigest()[:10]
                if key not in seen:
                    seen.add(key)
                    _write(CORPUS / "flexbuffer", f"{op.name}_{key}", opts)
            if op.name == "SbnnBconv2d":
                blob = _constant_bytes(data, op.inputs[1])
                key = hashlib.sha1(blob).hexdigest()[:10]
                if key not in seen:
                    seen.add(key)
                    _write(CORPUS / "sbf1", f"{name}_{key}.sbf1", blob)
    rng = np.random.default_rng(0)
    for shape in [(1, 1, 1, 1), (3, 3, 3, 7), (8, 3, 3, 32), (5, 1, 1, 33), (4, 2, 3, 65), (2, 5, 5, 130)]:
        for p in (0.0, 0.01, 0.1, 0.5, 0.9, 1.0):
            wb = np.where(rng.uniform(size=shape) < p, 1, -1).astype(np.int8)
            data = encode_filter(wb)
            _write(CORPUS / "sbf1", f"enc_{'x'.join(map(str, shape))}_p{p}.sbf1", data)
    wb = np.where(rng.uniform(size=(6, 3, 3, 40)) < 0.05, 1, -1).astype(np.int8)
    for k in (0, 1, 5, 24):
        _write(CORPUS / "sbf1", f"enc_6x3x3x40_k{k}.sbf1", encode_filter(wb, rice_k=k))
    for sub in ("model", "flexbuffer", "sbf1"):
        files = [f for f in (CORPUS / sub).iterdir() if f.name != "README.md"]
        print(f"{sub}: {len(files)} files, {sum(f.stat().st_size for f in files)} bytes")


if __name__ == "__main__":
    main()
