"""Fashion-MNIST without surprises: tensorflow-datasets or Debian's IDX files.

``load_fashion_mnist()`` returns ``((x_train, y_train), (x_test, y_test))`` as
NumPy ``uint8`` arrays, images shaped ``(N, 28, 28, 1)``, labels ``(N,)`` in 0..9.

Sources, in the order ``source="auto"`` tries them:

1. ``tensorflow-datasets`` when ``fashion_mnist`` is already prepared in its data
   directory, or when a quick (2 s) connectivity check says it can be downloaded.
2. The IDX files (``train-images-idx3-ubyte.gz`` ...) in ``data_dir``, in
   ``$SBNN_FASHION_MNIST_DIR``, or where Debian's ``dataset-fashion-mnist``
   package puts them (``/usr/share/datasets/fashion-mnist``).

The IDX reader is self-contained (``gzip`` + NumPy) and checks magic numbers,
dimensions and sizes, so a truncated or corrupt file gives an error that names
the file instead of garbage arrays.
"""

from __future__ import annotations

import gzip
import logging
import os
import socket
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = [
    "IdxFormatError",
    "DatasetNotFoundError",
    "read_idx",
    "write_idx",
    "load_fashion_mnist",
    "find_idx_dir",
    "DEBIAN_FASHION_MNIST_DIR",
    "ENV_VAR",
]

DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
ENV_VAR = "SBNN_FASHION_MNIST_DIR"
SOURCES = ("auto", "tfds", "idx")

_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

# IDX type codes (third byte of the magic number) -> big-endian NumPy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dt.newbyteorder("="): code for code, dt in _IDX_DTYPES.items()}


class IdxFormatError(ValueError):
    """An IDX file is corrupt, truncated or not an IDX file at all."""


class DatasetNotFoundError(FileNotFoundError):
    """No usable source of the dataset was found on this machine."""


# --------------------------------------------------------------------------- IDX
def _open(path: Path):
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head == b"\x1f\x8b":
        return gzip.open(path, "rb")
    return open(path, "rb")


def read_idx(path, expected_ndim: int | None = None) -> np.ndarray:
    """Read one IDX file (``.gz`` or plain) into a NumPy array.

    Args:
        path: the file; gzip compression is detected from the content.
        expected_ndim: if given, the number of dimensions the file must have
            (3 for images, 1 for labels).

    Returns:
        An array in native byte order with the file's shape and type.

    Raises:
        IdxFormatError: bad magic number, unknown type code, wrong number of
            dimensions, truncated data, trailing bytes or a corrupt gzip stream.
        FileNotFoundError: the file does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"IDX file not found: {path}")
    try:
        with _open(path) as fh:
            data = fh.read()
    except (OSError, EOFError, zlib.error) as err:  # corrupt/truncated gzip
        raise IdxFormatError(f"{path}: cannot decompress ({err}); the file is corrupt or truncated.") from err
    if len(data) < 4:
        raise IdxFormatError(f"{path}: {len(data)} bytes, too short for an IDX header.")
    zero0, zero1, code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0:
        raise IdxFormatError(
            f"{path}: bad magic number 0x{data[:4].hex()} (an IDX file starts with two zero bytes)."
        )
    if code not in _IDX_DTYPES:
        raise IdxFormatError(f"{path}: unknown IDX type code 0x{code:02x} in magic number 0x{data[:4].hex()}.")
    if ndim == 0:
        raise IdxFormatError(f"{path}: IDX header declares 0 dimensions.")
    if expected_ndim is not None and ndim != expected_ndim:
        raise IdxFormatError(
            f"{path}: {ndim} dimensions in the header, expected {expected_ndim} "
            f"(magic number 0x{data[:4].hex()})."
        )
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise IdxFormatError(f"{path}: truncated header ({len(data)} bytes, need {header_len}).")
    shape = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = _IDX_DTYPES[code]
    n_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    body = len(data) - header_len
    if body < n_bytes:
        raise IdxFormatError(
            f"{path}: truncated: shape {shape} needs {n_bytes} data bytes, file has {body}."
        )
    if body > n_bytes:
        raise IdxFormatError(
            f"{path}: {body - n_bytes} unexpected trailing bytes after the data of shape {shape}."
        )
    array = np.frombuffer(data, dtype=dtype, count=n_bytes // dtype.itemsize, offset=header_len)
    return array.reshape(shape).astype(dtype.newbyteorder("="), copy=True)


def write_idx(path, array, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file (gzip-compressed when the name ends in ``.gz``).

    Mostly for tests and for exporting subsets; supports uint8, int8, int16,
    int32, float32 and float64.
    """
    path = Path(path)
    array = np.asarray(array)
    dtype = array.dtype.newbyteorder("=")
    if dtype not in _IDX_CODES:
        raise ValueError(f"write_idx: argument `array` has dtype {array.dtype}, which has no IDX type code.")
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"write_idx: argument `array` needs 1..255 dimensions, got {array.ndim}.")
    code = _IDX_CODES[dtype]
    payload = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += np.ascontiguousarray(array, dtype=_IDX_DTYPES[code]).tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    opener = gzip.open if compress else open
    with opener(path, "wb") as fh:
        fh.write(payload)
    return path


def _idx_file(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz", stem.replace("-idx", ".idx")):
        candidate = directory / name
        if candidate.exists():
            return candidate
    return None


def find_idx_dir(data_dir=None) -> Path | None:
    """The first directory holding all four Fashion-MNIST IDX files, or None.

    Looks in ``data_dir``, ``$SBNN_FASHION_MNIST_DIR``, then Debian's location.
    """
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise ValueError(f"find_idx_dir: argument `data_dir` must be a path or None, got {data_dir!r}.")
    candidates = [data_dir, os.environ.get(ENV_VAR), DEBIAN_FASHION_MNIST_DIR]
    for cand in candidates:
        if not cand:
            continue
        directory = Path(cand).expanduser()
        if directory.is_dir() and all(_idx_file(directory, stem) for stem in _FILES.values()):
            return directory
    return None


def _load_idx_dir(directory: Path):
    arrays = {}
    for key, stem in _FILES.items():
        path = _idx_file(directory, stem)
        if path is None:
            raise DatasetNotFoundError(f"{directory}: missing {stem}(.gz).")
        arrays[key] = read_idx(path, expected_ndim=3 if key.startswith("x") else 1)
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or y.dtype != np.uint8:
            raise IdxFormatError(f"{directory}: {split} images/labels must be uint8, got {x.dtype}/{y.dtype}.")
        if x.shape[1:] != (28, 28):
            raise IdxFormatError(f"{directory}: {split} images have shape {x.shape[1:]}, expected (28, 28).")
        if x.shape[0] != y.shape[0]:
            raise IdxFormatError(
                f"{directory}: {x.shape[0]} {split} images but {y.shape[0]} labels."
            )
        if y.size and y.max() > 9:
            raise IdxFormatError(f"{directory}: {split} label {int(y.max())} outside 0..9.")
    return (
        (arrays["x_train"][..., None], arrays["y_train"]),
        (arrays["x_test"][..., None], arrays["y_test"]),
    )


# --------------------------------------------------------------------------- tfds
def _online(host: str = "storage.googleapis.com", port: int = 443, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class _QuietAbsl:
    """Silence absl's Python logger (tfds warns about empty version folders while probing)."""

    def __enter__(self):
        self.logger = logging.getLogger("absl")
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        self.logger.setLevel(self.level)


def _tfds_probe(data_dir):
    """``(builder, prepared)`` for tfds' fashion_mnist; ``(None, False)`` without tfds."""
    try:
        import sbnn_keras  # noqa: F401  (legacy Keras before TF)
        import tensorflow_datasets as tfds
    except Exception:  # noqa: BLE001 - any import problem means "not available"
        return None, False
    with _QuietAbsl():
        try:
            builder = tfds.builder("fashion_mnist", data_dir=data_dir)
        except Exception:  # noqa: BLE001
            return None, False
        try:
            prepared = bool(builder.is_prepared())
        except Exception:  # noqa: BLE001
            prepared = False
    return builder, prepared


def _load_tfds(builder, download: bool):
    import tensorflow_datasets as tfds

    if download:
        builder.download_and_prepare()
    out = []
    for split in ("train", "test"):
        x, y = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, as_supervised=True))
        out.append((np.asarray(x, dtype=np.uint8).reshape(-1, 28, 28, 1), np.asarray(y, dtype=np.uint8)))
    return tuple(out)


def _not_found_message(data_dir) -> str:
    return (
        "Fashion-MNIST not found. Looked for tensorflow-datasets' prepared 'fashion_mnist' "
        f"(data_dir={data_dir!r}) and for the IDX files (train-images-idx3-ubyte.gz, ...) in "
        f"data_dir, ${ENV_VAR} and {DEBIAN_FASHION_MNIST_DIR}. Fix it with one of: "
        "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu, no network needed); "
        f"put the four IDX files in a directory and set {ENV_VAR} to it; or give the "
        "machine network access so tensorflow-datasets can download 'fashion_mnist'."
    )


def load_fashion_mnist(source: str = "auto", data_dir=None, verbose: bool = False):
    """Load Fashion-MNIST as ``((x_train, y_train), (x_test, y_test))``.

    Args:
        source: ``"auto"`` (tfds if prepared or downloadable, else IDX files),
            ``"tfds"`` (only tensorflow-datasets) or ``"idx"`` (only IDX files).
        data_dir: directory for tfds' data and/or holding the IDX files.
        verbose: print which source was used.

    Returns:
        ``x`` arrays ``uint8`` of shape ``(N, 28, 28, 1)`` (60000 train, 10000 test),
        ``y`` arrays ``uint8`` of shape ``(N,)`` with values in 0..9.

    Raises:
        ValueError: unknown ``source``.
        DatasetNotFoundError: nothing usable found; the message says what to install.
        IdxFormatError: IDX files found but corrupt.
    """
    if source not in SOURCES:
        raise ValueError(f"load_fashion_mnist: `source` must be one of {SOURCES}, got {source!r}.")

    def say(msg):
        if verbose:
            print(f"[sbnn_zoo.datasets] {msg}")

    if source in ("auto", "tfds"):
        # tfds only looks in its own data dir; IDX files in data_dir are a separate source.
        tfds_dir = data_dir if data_dir and find_idx_dir(data_dir) is None else None
        builder, prepared = _tfds_probe(tfds_dir)
        if builder is not None:
            if prepared:
                say(f"tensorflow-datasets (prepared in {builder.data_dir})")
                return _load_tfds(builder, download=False)
            if _online():
                say("tensorflow-datasets (downloading)")
                try:
                    return _load_tfds(builder, download=True)
                except Exception as err:  # noqa: BLE001
                    if source == "tfds":
                        raise DatasetNotFoundError(f"tensorflow-datasets download failed: {err}") from err
                    say(f"tfds download failed ({err}); trying IDX files")
        if source == "tfds":
            raise DatasetNotFoundError(
                "tensorflow-datasets: 'fashion_mnist' is not prepared and cannot be downloaded "
                "(tensorflow-datasets missing or no network). " + _not_found_message(data_dir)
            )
    directory = find_idx_dir(data_dir)
    if directory is None:
        raise DatasetNotFoundError(_not_found_message(data_dir))
    say(f"IDX files in {directory}")
    return _load_idx_dir(directory)
