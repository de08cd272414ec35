// SBF1: compact storage of sparse binary filters (see sbnn_keras/sparse_format.py,
// the reference encoder/decoder and the format description). This is the native
// decoder: it expands SBF1 bytes into LCE's bitpacked OHWI filter words, checking
// every field and every read against the buffer size first. Header only, C++17,
// no allocation, no exceptions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace sbnn {
namespace sbf1 {

constexpr std::size_t kHeaderSize = 32;
constexpr uint32_t kMaxRiceK = 24;
constexpr uint64_t kMaxChannelWeights = (uint64_t{1} << 31) - 1;
constexpr uint64_t kMaxFilterWeights = uint64_t{1} << 26;

struct Header {
  uint32_t version = 0;  // 2: CRC-32 trailer (verified by ParseHeader); 1: none
  uint32_t rice_k = 0;
  uint32_t out_channels = 0, filter_h = 0, filter_w = 0, channels = 0;
  uint32_t total_connections = 0, payload_bits = 0;
};

inline uint32_t ReadU32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}

constexpr std::size_t kChecksumSize = 4;

// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320; zlib's crc32), bit by bit:
// filters are decoded once per prepare, so a table is not worth its cache lines.
inline uint32_t Crc32(const uint8_t* data, std::size_t size) {
  uint32_t crc = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

// Parses and validates the header. On failure writes a message into `error`.
inline bool ParseHeader(const uint8_t* data, std::size_t size, Header* h, char* error,
                        std::size_t error_size) {
  if (size < kHeaderSize) {
    std::snprintf(error, error_size, "SBF1: %zu bytes is shorter than the 32-byte header", size);
    return false;
  }
  if (std::memcmp(data, "SBF1", 4) != 0) {
    std::snprintf(error, error_size, "SBF1: bad magic");
    return false;
  }
  if (data[4] != 1 && data[4] != 2) {
    std::snprintf(error, error_size, "SBF1: unsupported version %u", unsigned(data[4]));
    return false;
  }
  // Version 2 ends with a CRC-32 of everything before it; version 1 (no checksum) is
  // still read, with the structural checks only.
  h->version = data[4];
  if (h->version == 2) {
    if (size < kHeaderSize + kChecksumSize) {
      std::snprintf(error, error_size, "SBF1: %zu bytes cannot hold the header and the checksum",
                    size);
      return false;
    }
    size -= kChecksumSize;
  }
  h->rice_k = data[5];
  if (h->rice_k > kMaxRiceK || data[6] != 0 || data[7] != 0) {
    std::snprintf(error, error_size, "SBF1: bad rice_k %u or reserved field", h->rice_k);
    return false;
  }
  h->out_channels = ReadU32(data + 8);
  h->filter_h = ReadU32(data + 12);
  h->filter_w = ReadU32(data + 16);
  h->channels = ReadU32(data + 20);
  h->total_connections = ReadU32(data + 24);
  h->payload_bits = ReadU32(data + 28);
  if (!h->out_channels || !h->filter_h || !h->filter_w || !h->channels) {
    std::snprintf(error, error_size, "SBF1: zero dimension in the shape");
    return false;
  }
  // Overflow-safe: each factor is checked against the bound divided by the others
  // (three uint32 factors can exceed 2^64 and wrap to a small product).
  uint64_t per_channel = h->filter_h;
  bool too_large = per_channel > kMaxChannelWeights / h->filter_w;
  if (!too_large) {
    per_channel *= h->filter_w;
    too_large = per_channel > kMaxChannelWeights / h->channels;
  }
  if (!too_large) {
    per_channel *= h->channels;
    too_large = per_channel > kMaxFilterWeights / h->out_channels;
  }
  if (too_large) {
    std::snprintf(error, error_size, "SBF1: shape %ux%ux%ux%u is too large", h->out_channels,
                  h->filter_h, h->filter_w, h->channels);
    return false;
  }
  const uint64_t payload_bytes = (uint64_t(h->payload_bits) + 7) / 8;
  if (payload_bytes != size - kHeaderSize) {
    std::snprintf(error, error_size, "SBF1: payload has %zu bytes, header says %u bits",
                  size - kHeaderSize, h->payload_bits);
    return false;
  }
  if (uint64_t(h->payload_bits) < 2ull * h->out_channels) {
    std::snprintf(error, error_size, "SBF1: payload too short for %u channels", h->out_channels);
    return false;
  }
  if (h->version == 2) {
    const uint32_t stored = ReadU32(data + size), computed = Crc32(data, size);
    if (stored != computed) {
      std::snprintf(error, error_size,
                    "SBF1: checksum mismatch (stored 0x%08x, computed 0x%08x): the filter is corrupt",
                    stored, computed);
      return false;
    }
  }
  return true;
}

class BitReader {
 public:
  BitReader(const uint8_t* data, uint64_t nbits) : data_(data), nbits_(nbits) {}
  uint64_t pos() const { return pos_; }
  bool Bit(uint32_t* bit) {
    if (pos_ >= nbits_) return false;
    *bit = (data_[pos_ >> 3] >> (pos_ & 7)) & 1u;
    ++pos_;
    return true;
  }
  bool Bits(uint32_t n, uint64_t* value) {
    if (n > 32 || pos_ + n > nbits_) return false;
    uint64_t v = 0;
    for (uint32_t i = 0; i < n; ++i) {
      uint32_t b = 0;
      Bit(&b);
      v |= uint64_t(b) << i;
    }
    *value = v;
    return true;
  }
  // Rice(k) value, refusing anything above `limit`.
  bool Rice(uint32_t k, uint64_t limit, uint64_t* value) {
    uint64_t q = 0;
    for (;;) {
      uint32_t b = 0;
      if (!Bit(&b)) return false;
      if (!b) break;
      if (++q > (limit >> k)) return false;
    }
    uint64_t r = 0;
    if (!Bits(k, &r)) return false;
    *value = (q << k) | r;
    return *value <= limit;
  }
  // Exp-Golomb order 0, refusing anything above `limit`.
  bool ExpGolomb(uint64_t limit, uint64_t* value) {
    uint32_t zeros = 0, b = 0;
    for (;;) {
      if (!Bit(&b)) return false;
      if (b) break;
      if (++zeros > 40) return false;
    }
    uint64_t x = 1;
    for (uint32_t i = 0; i < zeros; ++i) {
      if (!Bit(&b)) return false;
      x = (x << 1) | b;
    }
    *value = x - 1;
    return *value <= limit;
  }

 private:
  const uint8_t* data_;
  uint64_t nbits_;
  uint64_t pos_ = 0;
};

// Number of int32 words of the bitpacked OHWI filter for header `h`.
inline uint64_t PackedWords(const Header& h) {
  return uint64_t(h.out_channels) * h.filter_h * h.filter_w * ((h.channels + 31) / 32);
}

// LCE's bitpacked filter being written: int32 words [O, H, W, ceil(C/32)], bit 1 = -1
// (not a connection), bit 0 = +1 (a connection), padding bits 0.
class PackedOutput {
 public:
  PackedOutput(const Header& h, int32_t* words)
      : h_(h), words_(words), words_per_tap_((h.channels + 31) / 32),
        taps_(uint64_t(h.filter_h) * h.filter_w) {}

  uint64_t per_channel() const { return taps_ * h_.channels; }

  // Every weight "no connection": all real channel bits 1, padding bits 0.
  void Clear() {
    for (uint64_t o = 0; o < h_.out_channels; ++o) {
      for (uint64_t t = 0; t < taps_; ++t) {
        for (uint32_t w = 0; w < words_per_tap_; ++w) {
          const uint32_t first = w * 32;
          const uint32_t n = h_.channels - first < 32 ? h_.channels - first : 32;
          const uint32_t bits = n == 32 ? 0xFFFFFFFFu : ((1u << n) - 1u);
          words_[(o * taps_ + t) * words_per_tap_ + w] = int32_t(bits);
        }
      }
    }
  }

  // Weight `position` (tap-major, channel-minor) of output channel o.
  void Set(uint64_t o, uint64_t position, bool connected) {
    const uint64_t tap = position / h_.channels;
    const uint32_t c = uint32_t(position % h_.channels);
    int32_t& word = words_[(o * taps_ + tap) * words_per_tap_ + c / 32];
    const uint32_t bit = 1u << (c % 32);
    word = int32_t(connected ? uint32_t(word) & ~bit : uint32_t(word) | bit);
  }

 private:
  const Header& h_;
  int32_t* words_;
  const uint32_t words_per_tap_;
  const uint64_t taps_;
};

// Reads output channel o (mode, then its positions or raw bits) into `out`, adding
// its connections to *count. False with a message when the stream ends or a count,
// gap or position is out of range.
inline bool DecodeChannel(BitReader& reader, const Header& h, uint64_t o, PackedOutput& out,
                          uint64_t* count, char* error, std::size_t error_size) {
  const uint64_t per_channel = out.per_channel();
  uint64_t mode = 0;
  if (!reader.Bits(2, &mode)) {
    std::snprintf(error, error_size, "SBF1: stream ends in the mode of channel %llu",
                  (unsigned long long)o);
    return false;
  }
  if (mode == 1) {  // all connections
    for (uint64_t p = 0; p < per_channel; ++p) out.Set(o, p, true);
    *count += per_channel;
  } else if (mode == 2) {  // none
  } else if (mode == 0) {  // coded
    uint64_t inverted = 0;
    if (!reader.Bits(1, &inverted)) {
      std::snprintf(error, error_size, "SBF1: stream ends in channel %llu", (unsigned long long)o);
      return false;
    }
    if (inverted) {
      for (uint64_t p = 0; p < per_channel; ++p) out.Set(o, p, true);
    }
    uint64_t n = 0;
    if (!reader.ExpGolomb(per_channel - 1, &n)) {
      std::snprintf(error, error_size, "SBF1: bad count in channel %llu", (unsigned long long)o);
      return false;
    }
    ++n;
    uint64_t p = 0;
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t gap = 0;
      if (!reader.Rice(h.rice_k, per_channel - 1, &gap)) {
        std::snprintf(error, error_size, "SBF1: bad gap %llu in channel %llu",
                      (unsigned long long)i, (unsigned long long)o);
        return false;
      }
      p = (i == 0) ? gap : p + gap + 1;
      if (p >= per_channel) {
        std::snprintf(error, error_size, "SBF1: position %llu out of range in channel %llu",
                      (unsigned long long)p, (unsigned long long)o);
        return false;
      }
      out.Set(o, p, !inverted);
    }
    *count += inverted ? per_channel - n : n;
  } else {  // raw bitmap
    if (reader.pos() + per_channel > h.payload_bits) {
      std::snprintf(error, error_size, "SBF1: stream ends in raw channel %llu",
                    (unsigned long long)o);
      return false;
    }
    for (uint64_t p = 0; p < per_channel; ++p) {
      uint32_t b = 0;
      reader.Bit(&b);
      if (b) {
        out.Set(o, p, true);
        ++*count;
      }
    }
  }
  return true;
}

// Decodes into LCE's bitpacked filter (PackedOutput). `out_words` must hold
// `PackedWords(h)` words. Returns false with a message on any inconsistency.
inline bool DecodeToPacked(const uint8_t* data, std::size_t size, const Header& h,
                           int32_t* out_words, uint64_t out_capacity, char* error,
                           std::size_t error_size) {
  if (out_capacity < PackedWords(h)) {
    std::snprintf(error, error_size, "SBF1: output buffer too small");
    return false;
  }
  PackedOutput out(h, out_words);
  out.Clear();
  BitReader reader(data + kHeaderSize, h.payload_bits);
  uint64_t count = 0;
  for (uint64_t o = 0; o < h.out_channels; ++o) {
    if (!DecodeChannel(reader, h, o, out, &count, error, error_size)) return false;
    if (count > h.total_connections) {
      std::snprintf(error, error_size, "SBF1: more connections than the header's %u",
                    h.total_connections);
      return false;
    }
  }
  if (count != h.total_connections) {
    std::snprintf(error, error_size, "SBF1: %llu connections decoded, header says %u",
                  (unsigned long long)count, h.total_connections);
    return false;
  }
  if (reader.pos() != h.payload_bits) {
    std::snprintf(error, error_size, "SBF1: unused payload bits after the last channel");
    return false;
  }
  // The last payload byte (ParseHeader checked that the payload fills the buffer up
  // to the version-2 checksum).
  const uint32_t tail = h.payload_bits % 8;
  const std::size_t last = kHeaderSize + (uint64_t(h.payload_bits) + 7) / 8 - 1;
  if (tail && (last >= size || (data[last] >> tail) != 0)) {
    std::snprintf(error, error_size, "SBF1: padding bits after the payload are not zero");
    return false;
  }
  return true;
}

}  // namespace sbf1
}  // namespace sbnn
