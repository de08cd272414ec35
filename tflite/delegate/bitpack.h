// Bitpacking along the last axis, LCE's convention: int32 words, bit i of word
// w is channel 32*w + i, bit 1 means "negative" (-1), padding bits are 0.
#pragma once

#include <cstdint>

namespace sbnn {

constexpr int kBitsPerWord = 32;

inline int packed_words(int channels) { return (channels + kBitsPerWord - 1) / kBitsPerWord; }

// Packs `channels` values of one row; bit = is_negative(value).
template <typename T, typename IsNegative>
inline void pack_row(const T* in, int channels, int32_t* out, IsNegative is_negative) {
  const int full = channels / kBitsPerWord;
  for (int w = 0; w < full; ++w) {
    uint32_t word = 0;
    const T* p = in + w * kBitsPerWord;
    for (int b = 0; b < kBitsPerWord; ++b) word |= static_cast<uint32_t>(is_negative(p[b]) ? 1 : 0) << b;
    out[w] = static_cast<int32_t>(word);
  }
  const int rest = channels - full * kBitsPerWord;
  if (rest > 0) {
    uint32_t word = 0;
    const T* p = in + full * kBitsPerWord;
    for (int b = 0; b < rest; ++b) word |= static_cast<uint32_t>(is_negative(p[b]) ? 1 : 0) << b;
    out[full] = static_cast<int32_t>(word);
  }
}

// Unpacks one row: bit 0 -> zero_bit, bit 1 -> one_bit.
template <typename T>
inline void unpack_row(const int32_t* in, int channels, T* out, T zero_bit, T one_bit) {
  for (int c = 0; c < channels; ++c) {
    const uint32_t word = static_cast<uint32_t>(in[c / kBitsPerWord]);
    out[c] = ((word >> (c % kBitsPerWord)) & 1u) ? one_bit : zero_bit;
  }
}

}  // namespace sbnn
