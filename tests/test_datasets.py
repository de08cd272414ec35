"""Tests of sbnn_zoo.datasets: the IDX reader and the Fashion-MNIST loader."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from sbnn_zoo import datasets
from sbnn_zoo.datasets import (
    DatasetNotFoundError,
    IdxFormatError,
    find_idx_dir,
    load_fashion_mnist,
    read_idx,
    write_idx,
)


def _raw(path: Path, payload: bytes, compress=True) -> Path:
    opener = gzip.open if compress else open
    with opener(path, "wb") as fh:
        fh.write(payload)
    return path


def _header(code: int, shape) -> bytes:
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


# ------------------------------------------------------------------ IDX reader
@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_roundtrip_uint8_images(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    path = write_idx(tmp_path / ("img.gz" if compress else "img"), images, compress=compress)
    out = read_idx(path, expected_ndim=3)
    assert out.dtype == np.uint8 and out.shape == (5, 28, 28)
    np.testing.assert_array_equal(out, images)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_read_idx_all_types_big_endian(tmp_path, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 7).astype(dtype)
    if dtype == np.uint8:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    out = read_idx(write_idx(tmp_path / "a.gz", array))
    assert out.dtype == np.dtype(dtype)
    assert out.dtype.byteorder in ("=", "|")  # native order
    np.testing.assert_array_equal(out, array)


def test_read_idx_hand_written_labels(tmp_path):
    # header written by hand, independent of write_idx: magic 0x00000801, 4 labels
    path = _raw(tmp_path / "labels.gz", _header(0x08, (4,)) + bytes([3, 0, 9, 1]))
    np.testing.assert_array_equal(read_idx(path, expected_ndim=1), [3, 0, 9, 1])


def test_read_idx_bad_magic(tmp_path):
    path = _raw(tmp_path / "bad.gz", b"\x01\x02\x08\x01" + struct.pack(">I", 2) + b"\x00\x00")
    with pytest.raises(IdxFormatError, match="magic"):
        read_idx(path)


def test_read_idx_unknown_type_code(tmp_path):
    path = _raw(tmp_path / "bad.gz", _header(0x07, (2,)) + b"\x00\x00")
    with pytest.raises(IdxFormatError, match="type code"):
        read_idx(path)


def test_read_idx_wrong_ndim(tmp_path):
    path = write_idx(tmp_path / "x.gz", np.zeros((3, 2, 2), np.uint8))
    with pytest.raises(IdxFormatError, match="expected 1"):
        read_idx(path, expected_ndim=1)


def test_read_idx_truncated_data(tmp_path):
    path = _raw(tmp_path / "t.gz", _header(0x08, (10, 28, 28)) + bytes(28 * 28 * 10 - 5))
    with pytest.raises(IdxFormatError, match="truncated"):
        read_idx(path)


def test_read_idx_truncated_header(tmp_path):
    path = _raw(tmp_path / "t.gz", bytes([0, 0, 8, 3]) + struct.pack(">I", 10))
    with pytest.raises(IdxFormatError, match="truncated header"):
        read_idx(path)


def test_read_idx_too_short(tmp_path):
    path = _raw(tmp_path / "t.gz", b"\x00\x00")
    with pytest.raises(IdxFormatError, match="too short"):
        read_idx(path)


def test_read_idx_trailing_bytes(tmp_path):
    path = _raw(tmp_path / "t.gz", _header(0x08, (2,)) + b"\x01\x02\x03")
    with pytest.raises(IdxFormatError, match="trailing"):
        read_idx(path)


def test_read_idx_truncated_gzip_stream(tmp_path):
    good = write_idx(tmp_path / "good.gz", np.arange(1000, dtype=np.int32))
    blob = good.read_bytes()
    bad = tmp_path / "cut.gz"
    bad.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(IdxFormatError, match="cut.gz"):
        read_idx(bad)


def test_read_idx_corrupt_gzip_stream(tmp_path):
    good = write_idx(tmp_path / "good.gz", np.arange(1000, dtype=np.int32))
    blob = bytearray(good.read_bytes())
    blob[20:40] = b"\xff" * 20  # garble the deflate stream (header intact)
    bad = tmp_path / "garbled.gz"
    bad.write_bytes(bytes(blob))
    with pytest.raises(IdxFormatError):
        read_idx(bad)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope.gz")


# ------------------------------------------------------------------ loader on fake IDX dirs
def _fake_dir(tmp_path, n_train=6, n_test=4, image_shape=(28, 28), max_label=9):
    rng = np.random.default_rng(1)
    d = tmp_path / "fmnist"
    d.mkdir()
    write_idx(d / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (n_train, *image_shape), dtype=np.uint8))
    write_idx(d / "train-labels-idx1-ubyte.gz", rng.integers(0, max_label + 1, n_train, dtype=np.uint8))
    write_idx(d / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n_test, *image_shape), dtype=np.uint8))
    write_idx(d / "t10k-labels-idx1-ubyte.gz", rng.integers(0, max_label + 1, n_test, dtype=np.uint8))
    return d


def test_load_idx_from_data_dir(tmp_path):
    d = _fake_dir(tmp_path)
    (x, y), (xt, yt) = load_fashion_mnist(source="idx", data_dir=d)
    assert x.shape == (6, 28, 28, 1) and xt.shape == (4, 28, 28, 1)
    assert x.dtype == y.dtype == np.uint8
    assert y.shape == (6,) and yt.shape == (4,)


def test_load_idx_from_env_var(tmp_path, monkeypatch):
    d = _fake_dir(tmp_path)
    monkeypatch.setenv(datasets.ENV_VAR, str(d))
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "absent"))
    assert find_idx_dir() == d
    (x, _), _ = load_fashion_mnist(source="idx")
    assert x.shape == (6, 28, 28, 1)


def test_load_idx_label_count_mismatch(tmp_path):
    d = _fake_dir(tmp_path)
    write_idx(d / "t10k-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))
    with pytest.raises(IdxFormatError, match="4 test images but 3 labels"):
        load_fashion_mnist(source="idx", data_dir=d)


def test_load_idx_bad_label(tmp_path):
    d = _fake_dir(tmp_path, max_label=9)
    write_idx(d / "train-labels-idx1-ubyte.gz", np.array([0, 1, 2, 3, 4, 12], np.uint8))
    with pytest.raises(IdxFormatError, match="label 12"):
        load_fashion_mnist(source="idx", data_dir=d)


def test_load_idx_bad_image_size(tmp_path):
    d = _fake_dir(tmp_path, image_shape=(32, 32))
    with pytest.raises(IdxFormatError, match=r"\(28, 28\)"):
        load_fashion_mnist(source="idx", data_dir=d)


def test_not_found_message_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "absent"))
    with pytest.raises(DatasetNotFoundError) as info:
        load_fashion_mnist(source="idx", data_dir=tmp_path / "empty")
    msg = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in msg
    assert datasets.ENV_VAR in msg
    assert "tensorflow-datasets" in msg


def test_auto_falls_back_to_idx_when_offline(tmp_path, monkeypatch):
    d = _fake_dir(tmp_path)
    monkeypatch.setattr(datasets, "_online", lambda *a, **k: False)
    (x, _), _ = load_fashion_mnist(source="auto", data_dir=d)
    assert x.shape == (6, 28, 28, 1)


def test_bad_source():
    with pytest.raises(ValueError, match="source"):
        load_fashion_mnist(source="internet")


# ------------------------------------------------------------------ the real files
@pytest.mark.skipif(
    find_idx_dir(datasets.DEBIAN_FASHION_MNIST_DIR) is None,
    reason="Debian's Fashion-MNIST IDX files are absent (apt-get install dataset-fashion-mnist)",
)
def test_debian_fashion_mnist():
    (x, y), (xt, yt) = load_fashion_mnist(source="idx", data_dir=datasets.DEBIAN_FASHION_MNIST_DIR)
    assert x.shape == (60000, 28, 28, 1) and xt.shape == (10000, 28, 28, 1)
    assert y.shape == (60000,) and yt.shape == (10000,)
    assert x.dtype == xt.dtype == y.dtype == yt.dtype == np.uint8
    assert set(np.unique(y)) == set(range(10)) and set(np.unique(yt)) == set(range(10))
    assert np.bincount(yt).tolist() == [1000] * 10  # balanced test set
    assert 60 < x.mean() < 90


# ------------------------------------------------------------------ tfds path (faked builder)
class _FakeBuilder:
    data_dir = "/fake/tfds"

    def __init__(self):
        self.downloaded = False

    def download_and_prepare(self):
        self.downloaded = True

    def as_dataset(self, split, batch_size, as_supervised):
        import tensorflow as tf

        assert batch_size == -1 and as_supervised
        n = 7 if split == "train" else 3
        x = tf.zeros((n, 28, 28, 1), tf.uint8)
        y = tf.range(n, dtype=tf.int64) % 10
        return (x, y)


def test_auto_uses_prepared_tfds(tmp_path, monkeypatch):
    fake = _FakeBuilder()
    monkeypatch.setattr(datasets, "_tfds_probe", lambda data_dir: (fake, True))
    monkeypatch.setattr(datasets, "_online", lambda *a, **k: pytest.fail("no network check"))
    (x, y), (xt, yt) = load_fashion_mnist(source="auto")
    assert x.shape == (7, 28, 28, 1) and xt.shape == (3, 28, 28, 1)
    assert x.dtype == y.dtype == np.uint8 and not fake.downloaded


def test_tfds_downloads_only_when_online(tmp_path, monkeypatch):
    fake = _FakeBuilder()
    monkeypatch.setattr(datasets, "_tfds_probe", lambda data_dir: (fake, False))
    monkeypatch.setattr(datasets, "_online", lambda *a, **k: True)
    (x, _), _ = load_fashion_mnist(source="tfds")
    assert fake.downloaded and x.shape == (7, 28, 28, 1)


def test_tfds_only_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(datasets, "_tfds_probe", lambda data_dir: (_FakeBuilder(), False))
    monkeypatch.setattr(datasets, "_online", lambda *a, **k: False)
    with pytest.raises(DatasetNotFoundError, match="not prepared and cannot be downloaded"):
        load_fashion_mnist(source="tfds")
