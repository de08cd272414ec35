"""The native SBF1 decoder (tflite/format/sparse_filter.h) against the Python
reference: same filters, same accept/reject decisions, under ASan/UBSan."""

import pathlib
import shutil
import subprocess

import numpy as np
import pytest

from sbnn_runtime.sparse_format import SparseFilterError, decode_filter, encode_filter

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")


@pytest.fixture(scope="module")
def tool(tmp_path_factory):
    exe = tmp_path_factory.mktemp("sbf1") / "sbf1_tool"
    cmd = [
        "g++", "-std=c++17", "-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
        str(ROOT / "tflite/format/sbf1_tool.cc"), "-o", str(exe),
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    return exe


def pack_lce(wb):
    """LCE bitpacking of an OHWI {-1,+1} filter: bit 1 = -1, little-endian, padding 0."""
    o, h, w, c = wb.shape
    words = (c + 31) // 32
    bits = np.zeros((o, h, w, words * 32), dtype=np.uint64)
    bits[..., :c] = wb < 0
    shifts = np.arange(32, dtype=np.uint64)
    packed = (bits.reshape(o, h, w, words, 32) << shifts).sum(axis=-1).astype(np.uint32)
    return packed.view(np.int32).ravel()


def run(tool, tmp_path, data):
    src, dst = tmp_path / "in.sbf", tmp_path / "out.bin"
    src.write_bytes(data)
    proc = subprocess.run([str(tool), str(src), str(dst)], capture_output=True, text=True)
    assert proc.returncode in (0, 2), proc.stderr  # 0 ok, 2 rejected; anything else is a crash
    return (np.frombuffer(dst.read_bytes(), dtype=np.int32) if proc.returncode == 0 else None), proc.stderr


@pytest.mark.parametrize("shape, p", [((5, 3, 3, 40), 0.05), ((3, 1, 1, 64), 0.5), ((7, 3, 3, 31), 0.0),
                                      ((2, 3, 3, 33), 1.0), ((4, 5, 5, 3), 0.2)])
def test_native_decoder_matches_reference(tool, tmp_path, shape, p):
    rng = np.random.default_rng(sum(shape))
    wb = np.where(rng.random(shape) < p, 1, -1)
    out, err = run(tool, tmp_path, encode_filter(wb))
    assert out is not None, err
    np.testing.assert_array_equal(out, pack_lce(wb))


def test_native_decoder_agrees_on_mutations(tool, tmp_path):
    rng = np.random.default_rng(9)
    data = encode_filter(np.where(rng.random((3, 3, 3, 20)) < 0.1, 1, -1))
    for i in range(len(data)):
        for value in (0x00, 0xFF, data[i] ^ 0x04):
            bad = bytearray(data)
            bad[i] = value
            native, err = run(tool, tmp_path, bytes(bad))
            try:
                ref = decode_filter(bytes(bad))
            except SparseFilterError:
                ref = None
            assert (native is None) == (ref is None), (i, value, err)
            if ref is not None:
                np.testing.assert_array_equal(native, pack_lce(ref))
