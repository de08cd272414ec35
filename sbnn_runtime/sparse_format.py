"""Compact storage of sparse binary filters ("SBF1"), near the entropy bound h(p).

A binary filter in OHWI order ``[out_channels, filter_h, filter_w, channels]`` with
values in {-1, +1} (+1 = a connection) is stored per output channel as the positions
of its connections, gap-coded with a Rice code (a Golomb code with a power-of-two
parameter, near-optimal for the geometric gaps of a Bernoulli(p) sequence). This
module is the reference encoder and decoder; the native decoder
(``tflite/format/sparse_filter.h``) implements the same format and the same checks.

Layout (all integers little-endian; the bitstream is read LSB-first in each byte):

    offset size  field
    0      4     magic b"SBF1"
    4      1     version (2; 1 = the same without the checksum, still read)
    5      1     rice_k: Rice parameter of the gaps, 0..24
    6      2     reserved, 0
    8      4     out_channels          (>= 1)
    12     4     filter_h              (>= 1)
    16     4     filter_w              (>= 1)
    20     4     channels              (channels per group, >= 1)
    24     4     total_connections     (sum over channels, checked by the decoder)
    28     4     payload_bits          (bits of the bitstream that follow)
    32     ...   bitstream, ceil(payload_bits / 8) bytes, unused high bits 0
    end-4  4     version 2: CRC-32 (IEEE 802.3, as zlib.crc32) of every byte before it

The checksum makes a corrupted filter an error at load instead of a different
filter: the structural checks below catch most damage, but a flipped bit inside a
gap or a raw bitmap decodes to another valid filter. Version 1 files (written
before the checksum) are still read, with the structural checks only: safe for
memory (the decoder checks every read), but not protected against silent
corruption; converting the model again writes version 2.

Bitstream, for each output channel in order:
    2 bits mode: 0 = coded connections, 1 = every weight is a connection,
                 2 = no connection, 3 = raw bitmap (the encoder picks the shorter of
                 0 and 3, so no channel costs more than ~1 bit per weight)
    mode 0: 1 polarity bit (0: the coded positions are the +1 weights, the rest are
            -1; 1: the coded positions are the -1 weights), then the count n (>= 1)
            as Exp-Golomb order 0 of (n - 1), then n gaps as Rice(k):
            the first gap is the first position, each next gap is
            position - previous position - 1. Positions index the
            ``filter_h * filter_w * channels`` weights of the channel in HWI order.
    mode 3: ``filter_h * filter_w * channels`` bits, bit i = 1 iff weight i is a
            connection (the count must still agree with total_connections).

A Rice(k) value v is ``v >> k`` one-bits, a zero-bit, then the low k bits of v
(LSB first). Exp-Golomb order 0 of v: with m = bit length of v + 1, m - 1 zero-bits,
then the m bits of v + 1 from the most significant down.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

__all__ = [
    "SPARSE_OP",
    "MAGIC",
    "HEADER_SIZE",
    "SparseFilterError",
    "encode_filter",
    "decode_filter",
    "encoded_bits_per_weight",
]

#: the custom op whose filter (input 1) is an SBF1 byte tensor
SPARSE_OP = "SbnnBconv2d"
MAGIC = b"SBF1"
VERSION = 2  # written; 1 (no checksum) is still read
CHECKSUM_SIZE = 4
HEADER = struct.Struct("<4sBBHIIIIII")
HEADER_SIZE = HEADER.size  # 32
MAX_RICE_K = 24
MAX_WEIGHTS = 1 << 31  # per channel; larger filters are refused
MAX_FILTER_WEIGHTS = 1 << 26  # per filter (64 Mi weights; ResNet's largest has 2.4 Mi)
MODE_CODED, MODE_ALL, MODE_NONE, MODE_RAW = 0, 1, 2, 3


class SparseFilterError(ValueError):
    """Corrupt or inconsistent SBF1 data (the message says what and where)."""


class _BitWriter:
    def __init__(self):
        self.bits: list[int] = []

    def write(self, value: int, n: int):
        for i in range(n):
            self.bits.append((value >> i) & 1)

    def unary(self, q: int):
        self.bits.extend([1] * q)
        self.bits.append(0)

    def rice(self, v: int, k: int):
        self.unary(v >> k)
        self.write(v & ((1 << k) - 1), k)

    def exp_golomb(self, v: int):
        x = v + 1
        m = x.bit_length()
        self.bits.extend([0] * (m - 1))
        for i in range(m - 1, -1, -1):
            self.bits.append((x >> i) & 1)

    def to_bytes(self) -> bytes:
        if not self.bits:
            return b""
        arr = np.array(self.bits, dtype=np.uint8)
        return np.packbits(arr, bitorder="little").tobytes()


class _BitReader:
    def __init__(self, data: bytes, nbits: int):
        self.bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
        self.nbits = nbits
        self.pos = 0

    def _need(self, n: int, what: str):
        if self.pos + n > self.nbits:
            raise SparseFilterError(
                f"SBF1: bitstream ends inside {what} (bit {self.pos} of {self.nbits})."
            )

    def read(self, n: int, what: str) -> int:
        self._need(n, what)
        v = 0
        for i in range(n):
            v |= int(self.bits[self.pos + i]) << i
        self.pos += n
        return v

    def unary(self, limit: int, what: str) -> int:
        q = 0
        while True:
            self._need(1, what)
            bit = self.bits[self.pos]
            self.pos += 1
            if not bit:
                return q
            q += 1
            if q > limit:
                raise SparseFilterError(f"SBF1: {what} is larger than {limit} (bit {self.pos}).")

    def rice(self, k: int, limit: int, what: str) -> int:
        q = self.unary(limit >> k, what)
        v = (q << k) | self.read(k, what)
        if v > limit:
            raise SparseFilterError(f"SBF1: {what} {v} is larger than {limit}.")
        return v

    def exp_golomb(self, limit: int, what: str) -> int:
        zeros = 0
        while True:
            self._need(1, what)
            bit = self.bits[self.pos]
            self.pos += 1
            if bit:
                break
            zeros += 1
            if zeros > 40:
                raise SparseFilterError(f"SBF1: {what} has an over-long prefix (bit {self.pos}).")
        x = 1
        for _ in range(zeros):
            self._need(1, what)
            x = (x << 1) | int(self.bits[self.pos])
            self.pos += 1
        v = x - 1
        if v > limit:
            raise SparseFilterError(f"SBF1: {what} {v} is larger than {limit}.")
        return v


def flat_row_bits(pos: np.ndarray, per_channel: int) -> list[int]:
    row = np.zeros(per_channel, dtype=np.uint8)
    row[pos] = 1
    return row.tolist()


def _rice_cost(gaps: np.ndarray, k: int) -> int:
    return int(np.sum(gaps >> k)) + gaps.size * (1 + k)


def encode_filter(wb: np.ndarray, rice_k: int | None = None) -> bytes:
    """Encode a {-1, +1} filter in OHWI order (``+1`` = connection) as SBF1 bytes.

    Args:
        wb: array ``[out_channels, filter_h, filter_w, channels]`` of -1/+1.
        rice_k: Rice parameter; by default the one giving the smallest stream.

    Raises:
        ValueError: if ``wb`` is not 4-D, empty, or has values other than -1/+1.
    """
    wb = np.asarray(wb)
    if wb.ndim != 4 or wb.size == 0:
        raise ValueError(f"encode_filter: `wb` must be a non-empty 4-D OHWI array, got shape {wb.shape}.")
    if not np.all(np.abs(wb) == 1):
        bad = np.unique(wb[np.abs(wb) != 1])[:5].tolist()
        raise ValueError(f"encode_filter: `wb` must contain only -1 and +1, got also {bad}.")
    out_channels, fh, fw, channels = (int(d) for d in wb.shape)
    per_channel = fh * fw * channels
    if per_channel >= MAX_WEIGHTS:
        raise ValueError(f"encode_filter: {per_channel} weights per channel is too many.")
    flat = wb.reshape(out_channels, per_channel) > 0
    positions = [np.flatnonzero(row) for row in flat]
    # code the minority value of each channel (a filter whose sign was flipped by the
    # converter is as compact as the original)
    minority = []
    for row, pos in zip(flat, positions):
        inverted = pos.size > per_channel // 2
        minority.append((inverted, np.flatnonzero(~row) if inverted else pos))
    all_gaps = []
    for _, pos in minority:
        if 0 < pos.size < per_channel:
            all_gaps.append(np.diff(pos, prepend=-1) - 1)
    gaps = np.concatenate(all_gaps) if all_gaps else np.zeros(0, np.int64)
    if rice_k is None:
        rice_k = min(range(MAX_RICE_K + 1), key=lambda k: _rice_cost(gaps, k)) if gaps.size else 0
    if not 0 <= rice_k <= MAX_RICE_K:
        raise ValueError(f"encode_filter: `rice_k` must be in [0, {MAX_RICE_K}], got {rice_k!r}.")
    writer = _BitWriter()
    total = 0
    for pos, (inverted, coded) in zip(positions, minority):
        n = int(pos.size)
        total += n
        if n == per_channel:
            writer.write(MODE_ALL, 2)
        elif n == 0:
            writer.write(MODE_NONE, 2)
        else:
            m = int(coded.size)
            gaps_c = np.diff(coded, prepend=-1) - 1
            coded_bits = 1 + _rice_cost(gaps_c, rice_k) + 2 * m.bit_length() - 1
            if coded_bits < per_channel:
                writer.write(MODE_CODED, 2)
                writer.write(int(inverted), 1)
                writer.exp_golomb(m - 1)
                for g in gaps_c:
                    writer.rice(int(g), rice_k)
            else:
                writer.write(MODE_RAW, 2)
                writer.bits.extend(flat_row_bits(pos, per_channel))
    payload = writer.to_bytes()
    header = HEADER.pack(
        MAGIC, VERSION, rice_k, 0, out_channels, fh, fw, channels, total, len(writer.bits)
    )
    body = header + payload
    return body + struct.pack("<I", zlib.crc32(body))


def _unpack_header(data: bytes) -> tuple:
    """The header's fields, after the length and the magic are checked."""
    if len(data) < HEADER_SIZE:
        raise SparseFilterError(f"SBF1: {len(data)} bytes is shorter than the {HEADER_SIZE}-byte header.")
    fields = HEADER.unpack_from(data)
    if fields[0] != MAGIC:
        raise SparseFilterError(f"SBF1: bad magic {fields[0]!r}, expected {MAGIC!r}.")
    return fields


def _checked_header(data: bytes, expected_shape) -> tuple:
    """``(shape, rice_k, total, payload_bits, payload)`` of an SBF1 filter whose header,
    sizes and checksum agree; the error names the first thing that does not."""
    _, version, rice_k, reserved, out_channels, fh, fw, channels, total, payload_bits = _unpack_header(data)
    if version not in (1, VERSION):
        raise SparseFilterError(f"SBF1: unsupported version {version} (this reader knows 1 and {VERSION}).")
    stored = None
    if version == VERSION:
        if len(data) < HEADER_SIZE + CHECKSUM_SIZE:
            raise SparseFilterError(f"SBF1: {len(data)} bytes cannot hold the header and the checksum.")
        (stored,) = struct.unpack_from("<I", data, len(data) - CHECKSUM_SIZE)
        data = data[:-CHECKSUM_SIZE]
    if rice_k > MAX_RICE_K or reserved != 0:
        raise SparseFilterError(f"SBF1: bad rice_k {rice_k} or reserved field {reserved}.")
    if min(out_channels, fh, fw, channels) < 1:
        raise SparseFilterError(
            f"SBF1: zero dimension in shape {(out_channels, fh, fw, channels)}."
        )
    shape = (out_channels, fh, fw, channels)
    if expected_shape is not None and tuple(int(d) for d in expected_shape) != shape:
        raise SparseFilterError(f"SBF1: header declares shape {shape}, expected {tuple(expected_shape)}.")
    per_channel = fh * fw * channels
    if per_channel >= MAX_WEIGHTS or out_channels * per_channel > MAX_FILTER_WEIGHTS:
        raise SparseFilterError(
            f"SBF1: shape {shape} is too large (more than {MAX_FILTER_WEIGHTS} weights)."
        )
    payload = data[HEADER_SIZE:]
    if len(payload) != (payload_bits + 7) // 8:
        raise SparseFilterError(
            f"SBF1: payload has {len(payload)} bytes, header says {payload_bits} bits."
        )
    if payload_bits < 2 * out_channels:
        raise SparseFilterError(f"SBF1: {payload_bits} payload bits cannot hold {out_channels} channels.")
    if stored is not None and zlib.crc32(data) != stored:
        raise SparseFilterError(
            f"SBF1: checksum mismatch (stored {stored:#010x}, computed {zlib.crc32(data):#010x}): "
            "the filter is corrupt."
        )
    return shape, rice_k, total, payload_bits, payload


def _decode_channel(reader: _BitReader, row: np.ndarray, o: int, rice_k: int) -> int:
    """Reads output channel ``o`` into ``row`` (all -1 on entry); its connection count."""
    per_channel = row.size
    mode = reader.read(2, f"mode of channel {o}")
    if mode == MODE_ALL:
        row[:] = 1
        return per_channel
    if mode == MODE_NONE:
        return 0
    if mode == MODE_CODED:
        inverted = reader.read(1, f"polarity of channel {o}")
        n = reader.exp_golomb(per_channel - 1, f"count of channel {o}") + 1
        if inverted:
            row[:] = 1
        p = -1
        for i in range(n):
            gap = reader.rice(rice_k, per_channel - 1, f"gap {i} of channel {o}")
            p += gap + 1
            if p >= per_channel:
                raise SparseFilterError(
                    f"SBF1: channel {o} position {p} is out of range (channel has {per_channel} weights)."
                )
            row[p] = -1 if inverted else 1
        return per_channel - n if inverted else n
    # MODE_RAW
    reader._need(per_channel, f"raw bits of channel {o}")
    bits = reader.bits[reader.pos : reader.pos + per_channel]
    reader.pos += per_channel
    row[:] = np.where(bits, 1, -1)
    return int(bits.sum())


def decode_filter(data: bytes, expected_shape=None) -> np.ndarray:
    """Decode SBF1 bytes into the {-1, +1} OHWI filter (int8).

    Args:
        data: the encoded filter.
        expected_shape: if given, the OHWI shape the header must declare (checked
            before anything is allocated).

    Raises:
        SparseFilterError: on a bad magic/version, sizes that do not add up, positions
            out of range, counts that disagree with the header, or trailing garbage.
    """
    data = _as_bytes(data, "decode_filter")
    shape, rice_k, total, payload_bits, payload = _checked_header(data, expected_shape)
    out_channels = shape[0]
    reader = _BitReader(payload, payload_bits)
    out = -np.ones((out_channels, shape[1] * shape[2] * shape[3]), dtype=np.int8)
    count = 0
    for o in range(out_channels):
        count += _decode_channel(reader, out[o], o, rice_k)
        if count > total:
            raise SparseFilterError(f"SBF1: more connections than the header's {total}.")
    if count != total:
        raise SparseFilterError(f"SBF1: {count} connections decoded, header says {total}.")
    if reader.pos != payload_bits:
        raise SparseFilterError(
            f"SBF1: {payload_bits - reader.pos} unused payload bits after the last channel."
        )
    tail = reader.bits[payload_bits:]
    if tail.size and np.any(tail):
        raise SparseFilterError("SBF1: padding bits after the payload are not zero.")
    return out.reshape(shape)


def encoded_bits_per_weight(data: bytes) -> float:
    """Total encoded bits (header included) divided by the number of weights.

    Raises:
        SparseFilterError: ``data`` is shorter than the header, has a bad magic or an
            empty shape.
    """
    data = _as_bytes(data, "encoded_bits_per_weight")
    _, _, _, _, o, fh, fw, c, _, _ = _unpack_header(data)
    if min(o, fh, fw, c) < 1:
        raise SparseFilterError(f"SBF1: zero dimension in shape {(o, fh, fw, c)}.")
    return 8 * len(data) / (o * fh * fw * c)


def _as_bytes(data, function: str) -> bytes:
    if isinstance(data, np.ndarray) and data.dtype == np.uint8:
        return data.tobytes()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"{function}: argument `data` must be bytes, got {type(data).__name__}.")
    return bytes(data)
