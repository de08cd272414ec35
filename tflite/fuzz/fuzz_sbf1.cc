// libFuzzer harness: the SBF1 decoder (tflite/format/sparse_filter.h), which expands
// the compressed filter of every SbnnBconv2d node at prepare.
//
// Each input is used twice:
//  1. as SBF1 bytes (seeds: filters from sparse-flavour models and the Python
//     encoder at several sparsities, tflite/fuzz/corpus/sbf1/): parsing and decoding
//     must stay inside the buffer (ASan) and, when they accept, the result must be
//     consistent: padding bits 0, as many connections as the header says, and
//     re-encoding the decoded filter and decoding that gives the same words;
//  2. as a recipe (shape, sparsity, Rice parameter, channel modes) for a valid
//     filter encoded by writers.h: the decoder must accept it and reproduce it.
#include <cstdint>
#include <cstring>
#include <vector>

#include "format/sparse_filter.h"
#include "tests/support/fake_runtime.h"
#include "tests/support/writers.h"

namespace {

using namespace sbnn_test;
namespace sbf1 = sbnn::sbf1;

// Larger filters are decoded by the delegate too (up to 2^26 words); the harness
// skips them to keep each execution fast and within libFuzzer's memory limit.
constexpr uint64_t kMaxWords = uint64_t{1} << 22;

bool Decode(const uint8_t* data, size_t size, sbf1::Header* h, std::vector<int32_t>* words,
            bool* skipped) {
  char err[256];
  *skipped = false;
  if (!sbf1::ParseHeader(data, size, h, err, sizeof(err))) {
    if (err[0] == 0) Die("header rejected without a message");
    return false;
  }
  if (sbf1::PackedWords(*h) > kMaxWords) {
    *skipped = true;
    return false;
  }
  words->assign(static_cast<size_t>(sbf1::PackedWords(*h)), 0x5A5A5A5A);
  err[0] = 0;
  if (!sbf1::DecodeToPacked(data, size, *h, words->data(), words->size(), err, sizeof(err))) {
    if (err[0] == 0) Die("payload rejected without a message");
    return false;
  }
  // The capacity check must refuse a buffer one word short.
  if (!words->empty()) {
    std::vector<int32_t> small(words->size() - 1);
    if (sbf1::DecodeToPacked(data, size, *h, small.data(), small.size(), err, sizeof(err)))
      Die("decoded into a buffer one word too small");
  }
  return true;
}

// Connections (bit 0 in a real channel) of decoded words; checks padding bits.
std::vector<bool> Connections(const sbf1::Header& h, const std::vector<int32_t>& words) {
  const uint32_t wpt = (h.channels + 31) / 32;
  const uint64_t rows = uint64_t{h.out_channels} * h.filter_h * h.filter_w;
  std::vector<bool> conn(static_cast<size_t>(rows * h.channels));
  uint64_t count = 0;
  for (uint64_t r = 0; r < rows; ++r) {
    for (uint32_t w = 0; w < wpt; ++w) {
      const uint32_t word = static_cast<uint32_t>(words[r * wpt + w]);
      const uint32_t n = h.channels - w * 32 < 32 ? h.channels - w * 32 : 32;
      if (n < 32 && (word >> n) != 0) Die("padding bits set in row %llu", (unsigned long long)r);
      for (uint32_t b = 0; b < n; ++b) {
        const bool c = ((word >> b) & 1u) == 0;
        conn[r * h.channels + w * 32 + b] = c;
        count += c;
      }
    }
  }
  if (count != h.total_connections)
    Die("decoded %llu connections, header says %u", (unsigned long long)count, h.total_connections);
  return conn;
}

void CheckRaw(const uint8_t* data, size_t size) {
  sbf1::Header h;
  std::vector<int32_t> words;
  bool skipped = false;
  if (!Decode(data, size, &h, &words, &skipped)) return;
  if (uint64_t{h.out_channels} * h.filter_h * h.filter_w * h.channels > (1u << 20)) return;
  const std::vector<bool> conn = Connections(h, words);
  // Re-encode with the header's Rice parameter and the default channel modes.
  const std::vector<uint8_t> again =
      EncodeSbf1(conn, h.out_channels, h.filter_h, h.filter_w, h.channels, h.rice_k, {});
  sbf1::Header h2;
  std::vector<int32_t> words2;
  if (!Decode(again.data(), again.size(), &h2, &words2, &skipped))
    Die("re-encoded filter does not decode");
  if (words2 != words) Die("re-encoded filter decodes differently");
}

struct Cursor {
  const uint8_t* p;
  size_t n;
  uint8_t u8() { return n ? (--n, *p++) : 0; }
};

void CheckRoundTrip(const uint8_t* data, size_t size) {
  Cursor c{data, size};
  const uint32_t out = 1 + c.u8() % 12, fh = 1 + c.u8() % 4, fw = 1 + c.u8() % 4;
  static const uint32_t kChannels[] = {1, 2, 3, 7, 31, 32, 33, 63, 64, 65, 96, 130};
  const uint32_t channels = kChannels[c.u8() % 12];
  static const uint32_t kPermille[] = {0, 1, 10, 50, 100, 300, 500, 700, 950, 990, 1000};
  const uint32_t permille = kPermille[c.u8() % 11];
  const uint32_t rice_k = c.u8() % 25;
  std::vector<uint8_t> modes(out);
  for (auto& m : modes) m = c.u8();
  uint64_t s = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < size; ++i) s = (s ^ data[i]) * 1099511628211ull;
  const uint64_t per = uint64_t{fh} * fw * channels;
  std::vector<bool> conn(static_cast<size_t>(out * per));
  for (size_t i = 0; i < conn.size(); ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    conn[i] = (s >> 33) % 1000 < permille;
  }
  // Some channels all or nothing, to reach the shortcut modes.
  for (uint32_t o = 0; o < out; ++o) {
    if (modes[o] % 7 == 3)
      for (uint64_t p = 0; p < per; ++p) conn[o * per + p] = true;
    if (modes[o] % 7 == 5)
      for (uint64_t p = 0; p < per; ++p) conn[o * per + p] = false;
  }
  const std::vector<uint8_t> enc = EncodeSbf1(conn, out, fh, fw, channels, rice_k, modes);
  sbf1::Header h;
  std::vector<int32_t> words;
  bool skipped = false;
  char err[256] = {0};
  if (!sbf1::ParseHeader(enc.data(), enc.size(), &h, err, sizeof(err)))
    Die("a valid header was rejected: %s", err);
  if (!Decode(enc.data(), enc.size(), &h, &words, &skipped))
    Die("a valid filter (%ux%ux%ux%u, k=%u) was rejected", out, fh, fw, channels, rice_k);
  if (words != PackFilter(conn, out, fh, fw, channels)) Die("a valid filter decodes wrongly");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (1u << 20)) return 0;
  CheckRaw(data, size);
  CheckRoundTrip(data, size);
  return 0;
}
