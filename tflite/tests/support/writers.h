// Writers for the delegate's tests and fuzz harnesses: flexbuffer maps of scalars (every byte width,
// inline and indirect integers, bools, floats) and SBF1 filters (every channel
// mode, any Rice parameter). They produce valid encodings from structured fuzz
// input, so the readers can be checked for correctness (round trips), not only
// for memory safety, and the op harness can build SbnnBconv2d filters.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace sbnn_test {

// ---- flexbuffers ---------------------------------------------------------------

enum FlexType : int {
  kFlexInt = 1,
  kFlexUInt = 2,
  kFlexFloat = 3,
  kFlexIndirectInt = 6,
  kFlexIndirectUInt = 7,
  kFlexMap = 9,
  kFlexBool = 26,
};

struct FlexEntry {
  std::string key;
  int64_t value = 0;
  int type = kFlexInt;
  int child_width = 4;  // indirect values: 1, 2, 4 or 8 bytes
};

inline int Log2Width(int w) { return w == 1 ? 0 : w == 2 ? 1 : w == 4 ? 2 : 3; }

inline bool FitsUnsigned(uint64_t v, int width) {
  return width == 8 || v < (uint64_t{1} << (8 * width));
}

// Builds a map (keys must be sorted and unique, as flexbuffers require). The
// value-slot width starts at `min_width` and the key-vector width at
// `min_key_width` and both grow until every offset fits. Returns {} if nothing fits.
inline std::vector<uint8_t> BuildFlexMap(const std::vector<FlexEntry>& entries, int min_width,
                                         int min_key_width, int* used_width = nullptr) {
  for (int width = min_width; width <= 8; width *= 2) {
    for (int kw = min_key_width; kw <= 8; kw *= 2) {
      std::vector<uint8_t> b;
      bool fits = true;
      auto put = [&](uint64_t v, int w) {
        for (int i = 0; i < w; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
      };
      auto align = [&](int w) {
        while (b.size() % static_cast<size_t>(w)) b.push_back(0);
      };
      std::vector<size_t> key_at, ind_at(entries.size(), 0);
      for (const FlexEntry& e : entries) {
        key_at.push_back(b.size());
        b.insert(b.end(), e.key.begin(), e.key.end());
        b.push_back(0);
      }
      for (size_t i = 0; i < entries.size(); ++i) {
        const FlexEntry& e = entries[i];
        if (e.type != kFlexIndirectInt && e.type != kFlexIndirectUInt) continue;
        align(e.child_width);
        ind_at[i] = b.size();
        put(static_cast<uint64_t>(e.value), e.child_width);
      }
      align(kw);
      put(entries.size(), kw);
      const size_t keyvec = b.size();
      for (size_t i = 0; i < entries.size(); ++i) {
        const uint64_t off = b.size() - key_at[i];
        fits = fits && FitsUnsigned(off, kw);
        put(off, kw);
      }
      align(width);
      const uint64_t keys_off = b.size() - keyvec;
      fits = fits && FitsUnsigned(keys_off, width) && FitsUnsigned(entries.size(), width);
      put(keys_off, width);
      put(static_cast<uint64_t>(kw), width);
      put(entries.size(), width);
      const size_t values = b.size();
      for (size_t i = 0; i < entries.size(); ++i) {
        const FlexEntry& e = entries[i];
        if (e.type == kFlexIndirectInt || e.type == kFlexIndirectUInt) {
          const uint64_t off = b.size() - ind_at[i];
          fits = fits && FitsUnsigned(off, width);
          put(off, width);
        } else if (e.type == kFlexFloat) {
          if (width >= 4) {
            uint64_t bits = 0;
            if (width == 4) {
              float f = static_cast<float>(e.value);
              uint32_t u;
              std::memcpy(&u, &f, 4);
              bits = u;
            } else {
              double d = static_cast<double>(e.value);
              std::memcpy(&bits, &d, 8);
            }
            put(bits, width);
          } else {
            put(0, width);
          }
        } else {
          put(static_cast<uint64_t>(e.value), width);
        }
      }
      for (const FlexEntry& e : entries) {
        const bool indirect = e.type == kFlexIndirectInt || e.type == kFlexIndirectUInt;
        b.push_back(static_cast<uint8_t>((e.type << 2) |
                                         Log2Width(indirect ? e.child_width : width)));
      }
      // Root: offset back to the value slots, packed type, root width.
      const uint64_t root_off = b.size() - values;
      int rw = 1;
      while (!FitsUnsigned(root_off, rw)) rw *= 2;
      const int root_width = rw > width ? rw : width;
      align(root_width);
      const uint64_t root_off2 = b.size() - values;
      if (!FitsUnsigned(root_off2, root_width)) fits = false;
      put(root_off2, root_width);
      b.push_back(static_cast<uint8_t>((kFlexMap << 2) | Log2Width(width)));
      b.push_back(static_cast<uint8_t>(root_width));
      if (fits) {
        if (used_width != nullptr) *used_width = width;
        return b;
      }
    }
  }
  return {};
}

// What MapReader::get_int must return for an entry: ok + value, or "not an int".
inline bool ExpectedFlexInt(const FlexEntry& e, int slot_width, int64_t* value) {
  auto sign_extend = [](uint64_t u, int w) {
    if (w < 8) {
      const uint64_t sign = uint64_t{1} << (8 * w - 1);
      u &= (sign << 1) - 1;
      if (u & sign) u |= ~((sign << 1) - 1);
    }
    int64_t v;
    std::memcpy(&v, &u, 8);
    return v;
  };
  auto truncate = [](uint64_t u, int w) { return w == 8 ? u : u & ((uint64_t{1} << (8 * w)) - 1); };
  const uint64_t u = static_cast<uint64_t>(e.value);
  switch (e.type) {
    case kFlexInt:
      *value = sign_extend(u, slot_width);
      return true;
    case kFlexIndirectInt:
      *value = sign_extend(u, e.child_width);
      return true;
    case kFlexUInt:
    case kFlexBool:
    case kFlexIndirectUInt: {
      const uint64_t t = truncate(u, e.type == kFlexIndirectUInt ? e.child_width : slot_width);
      if (t > static_cast<uint64_t>(INT64_MAX)) return false;
      *value = static_cast<int64_t>(t);
      return true;
    }
    default:
      return false;
  }
}

// ---- SBF1 -----------------------------------------------------------------------

class BitWriter {
 public:
  void Bit(uint32_t b) {
    if (n_ % 8 == 0) bytes_.push_back(0);
    bytes_.back() |= static_cast<uint8_t>((b & 1u) << (n_ % 8));
    ++n_;
  }
  void Bits(uint64_t v, uint32_t n) {
    for (uint32_t i = 0; i < n; ++i) Bit(static_cast<uint32_t>(v >> i) & 1u);
  }
  void Rice(uint64_t v, uint32_t k) {
    for (uint64_t q = v >> k; q > 0; --q) Bit(1);
    Bit(0);
    Bits(v, k);
  }
  void ExpGolomb(uint64_t v) {
    const uint64_t x = v + 1;
    int m = 0;
    while ((x >> m) > 1) ++m;  // m = bit length of x - 1
    for (int i = 0; i < m; ++i) Bit(0);
    for (int i = m; i >= 0; --i) Bit(static_cast<uint32_t>(x >> i) & 1u);
  }
  uint64_t size() const { return n_; }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
  uint64_t n_ = 0;
};

// Encodes `connection` ([out][h][w][c] flags, true = +1 weight) as SBF1.
// `mode_choice` picks, per channel, among the valid encodings (coded with either
// polarity, raw bitmap, and the shortcut modes where they apply), so that every
// decoder path is reachable.
inline std::vector<uint8_t> EncodeSbf1(const std::vector<bool>& connection, uint32_t out,
                                       uint32_t fh, uint32_t fw, uint32_t channels,
                                       uint32_t rice_k, const std::vector<uint8_t>& mode_choice) {
  const uint64_t per = uint64_t{fh} * fw * channels;
  BitWriter w;
  uint64_t total = 0;
  for (uint32_t o = 0; o < out; ++o) {
    std::vector<uint64_t> ones, zeros;
    for (uint64_t p = 0; p < per; ++p)
      (connection[o * per + p] ? ones : zeros).push_back(p);
    total += ones.size();
    const uint8_t choice = mode_choice.empty() ? 0 : mode_choice[o % mode_choice.size()];
    if (ones.size() == per && choice % 2 == 0) {
      w.Bits(1, 2);  // all
      continue;
    }
    if (ones.empty() && choice % 2 == 0) {
      w.Bits(2, 2);  // none
      continue;
    }
    const int pick = choice / 2 % 3;  // 0: coded minority, 1: coded other polarity, 2: raw
    const bool invert_ok = !zeros.empty(), plain_ok = !ones.empty();
    bool inverted = ones.size() > zeros.size();
    if (pick == 1) inverted = !inverted;
    if ((inverted && !invert_ok) || (!inverted && !plain_ok)) inverted = !inverted;
    if (pick == 2 || (inverted && !invert_ok) || (!inverted && !plain_ok)) {
      w.Bits(3, 2);  // raw
      for (uint64_t p = 0; p < per; ++p) w.Bit(connection[o * per + p] ? 1 : 0);
      continue;
    }
    const std::vector<uint64_t>& pos = inverted ? zeros : ones;
    w.Bits(0, 2);
    w.Bit(inverted ? 1 : 0);
    w.ExpGolomb(pos.size() - 1);
    for (size_t i = 0; i < pos.size(); ++i) w.Rice(i == 0 ? pos[0] : pos[i] - pos[i - 1] - 1, rice_k);
  }
  std::vector<uint8_t> b(32, 0);
  std::memcpy(b.data(), "SBF1", 4);
  b[4] = 1;
  b[5] = static_cast<uint8_t>(rice_k);
  auto put32 = [&](size_t at, uint64_t v) {
    for (int i = 0; i < 4; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
  };
  put32(8, out);
  put32(12, fh);
  put32(16, fw);
  put32(20, channels);
  put32(24, total);
  put32(28, w.size());
  b.insert(b.end(), w.bytes().begin(), w.bytes().end());
  return b;
}

// LCE bitpacking of the same filter: int32 words [out][h][w][ceil(c/32)], bit 1 = -1.
inline std::vector<int32_t> PackFilter(const std::vector<bool>& connection, uint32_t out,
                                       uint32_t fh, uint32_t fw, uint32_t channels) {
  const uint32_t words = (channels + 31) / 32;
  std::vector<int32_t> packed(static_cast<size_t>(out) * fh * fw * words, 0);
  for (uint64_t r = 0; r < uint64_t{out} * fh * fw; ++r)
    for (uint32_t c = 0; c < channels; ++c)
      if (!connection[r * channels + c])
        packed[r * words + c / 32] = static_cast<int32_t>(
            static_cast<uint32_t>(packed[r * words + c / 32]) | (1u << (c % 32)));
  return packed;
}

}  // namespace sbnn_test
