// libFuzzer harness: the delegate's flexbuffer reader (tflite/delegate/flexbuffer.h),
// which parses the custom options of every LceBconv2d / SbnnBconv2d / LceBMaxPool2d
// node of a model.
//
// Each input is used twice:
//  1. as raw option bytes (seeds: real option buffers written by LCE's converter,
//     tflite/fuzz/corpus/flexbuffer/): the reader must not read outside them
//     (ASan: libFuzzer hands over an exact-size heap copy), every key it reports
//     must be a NUL-terminated string inside the buffer, and every lookup of the
//     options the ops read must terminate with a verdict;
//  2. as a recipe for a valid map (keys, values, types, byte widths chosen by the
//     bytes) written by writers.h: the reader must accept it and return exactly
//     the written value for each key (or "not an integer" for floats and unsigned
//     values above INT64_MAX).
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "delegate/flexbuffer.h"
#include "tests/support/fake_runtime.h"
#include "tests/support/writers.h"

namespace {

using sbnn::flex::Lookup;
using sbnn::flex::MapReader;
using namespace sbnn_test;

const char* const kOptionKeys[] = {
    "channels_in",   "dilation_height_factor", "dilation_width_factor", "fused_activation_function",
    "pad_values",    "padding",                "stride_height",         "stride_width",
    "filter_height", "filter_width"};

void CheckRaw(const uint8_t* data, size_t size) {
  MapReader m(size ? data : nullptr, size);
  if (!m.ok()) {
    if (m.error() == nullptr || m.size() != 0) Die("rejected map without a message");
    int64_t v = 0;
    if (m.get_int("padding", &v) != Lookup::kMissing) Die("lookup in a rejected map");
    return;
  }
  for (int i = 0; i < m.size(); ++i) {
    const char* k = m.key(i);
    if (k == nullptr) Die("key %d of an accepted map is null", i);
    const auto* p = reinterpret_cast<const uint8_t*>(k);
    if (p < data || p >= data + size) Die("key %d points outside the buffer", i);
    if (std::memchr(p, 0, static_cast<size_t>(data + size - p)) == nullptr)
      Die("key %d is not terminated inside the buffer", i);
    int64_t v = 0;
    const Lookup r = m.get_int(k, &v);
    if (r == Lookup::kMissing) Die("key %d ('%s') is listed but not found", i, k);
  }
  if (m.key(-1) != nullptr || m.key(m.size()) != nullptr) Die("key() out of range is not null");
  for (const char* key : kOptionKeys) {
    int64_t v = 0;
    (void)m.get_int(key, &v);
  }
}

// A byte cursor that yields zeros once the input is exhausted.
struct Cursor {
  const uint8_t* p;
  size_t n;
  uint8_t u8() { return n ? (--n, *p++) : 0; }
  uint64_t u64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t{u8()} << (8 * i);
    return v;
  }
};

void CheckRoundTrip(const uint8_t* data, size_t size) {
  Cursor c{data, size};
  const int n_entries = c.u8() % 12;
  static const int kWidths[] = {1, 2, 4, 8};
  const int min_width = kWidths[c.u8() % 4];
  const int min_key_width = kWidths[c.u8() % 4];
  std::map<std::string, FlexEntry> by_key;
  for (int i = 0; i < n_entries; ++i) {
    FlexEntry e;
    const uint8_t pick = c.u8();
    if (pick < 128) {
      e.key = kOptionKeys[pick % 10];
    } else {
      const int len = 1 + pick % 6;
      for (int k = 0; k < len; ++k) e.key.push_back(static_cast<char>('a' + c.u8() % 26));
    }
    static const int kTypes[] = {kFlexInt, kFlexUInt, kFlexBool, kFlexIndirectInt,
                                 kFlexIndirectUInt, kFlexFloat};
    e.type = kTypes[c.u8() % 6];
    e.child_width = kWidths[c.u8() % 4];
    const uint8_t magnitude = c.u8() % 4;
    const uint64_t raw = c.u64();
    e.value = magnitude == 0 ? static_cast<int8_t>(raw)
              : magnitude == 1 ? static_cast<int16_t>(raw)
              : magnitude == 2 ? static_cast<int32_t>(raw)
                               : static_cast<int64_t>(raw);
    if (e.type == kFlexBool) e.value &= 1;
    by_key[e.key] = e;
  }
  std::vector<FlexEntry> entries;
  for (auto& kv : by_key) entries.push_back(kv.second);
  int width = 0;
  const std::vector<uint8_t> buf = BuildFlexMap(entries, min_width, min_key_width, &width);
  if (buf.empty()) return;
  MapReader m(buf.data(), buf.size());
  if (!m.ok()) Die("a valid map (%zu entries, width %d) was rejected: %s", entries.size(), width,
                   m.error());
  if (m.size() != static_cast<int>(entries.size())) Die("map size %d, wrote %zu", m.size(),
                                                        entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    const FlexEntry& e = entries[i];
    if (m.key(static_cast<int>(i)) == nullptr || e.key != m.key(static_cast<int>(i)))
      Die("key %zu reads back wrong", i);
    int64_t want = 0, got = 0;
    const bool is_int = ExpectedFlexInt(e, width, &want);
    const Lookup r = m.get_int(e.key.c_str(), &got);
    if (is_int && (r != Lookup::kOk || got != want))
      Die("key '%s' (type %d, slot width %d, child width %d): read %lld (%d), wrote %lld",
          e.key.c_str(), e.type, width, e.child_width, static_cast<long long>(got),
          static_cast<int>(r), static_cast<long long>(want));
    if (!is_int && r != Lookup::kNotInt)
      Die("key '%s' (type %d) should not read as an integer", e.key.c_str(), e.type);
  }
  int64_t v = 0;
  if (m.get_int("zzzz_not_there", &v) != Lookup::kMissing) Die("missing key found");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CheckRaw(data, size);
  CheckRoundTrip(data, size);
  return 0;
}
