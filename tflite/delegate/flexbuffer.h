// A small, bounds-checked reader for the flexbuffer maps that hold the custom
// options of the LCE ops (every option is an integer keyed by a string).
//
// Only what those maps need is supported: a root that is a map, keys, and
// integer-like values (INT, UINT, BOOL and their indirect forms). Every read is
// checked against the buffer; a malformed buffer yields an error, never a read
// outside [data, data + size).
#pragma once

#include <cstddef>
#include <cstdint>

namespace sbnn {
namespace flex {

enum class Lookup {
  kOk,        // found, integer value stored
  kMissing,   // key not in the map
  kNotInt,    // key present with a non-integer value
};

class MapReader {
 public:
  // Parses the root of `data`. On failure ok() is false and error() says why.
  MapReader(const void* data, size_t size);

  bool ok() const { return error_ == nullptr; }
  const char* error() const { return error_; }
  int size() const { return ok() ? static_cast<int>(count_) : 0; }

  // Looks up `key` and reads it as a signed 64-bit integer.
  Lookup get_int(const char* key, int64_t* value) const;

  // Key i as a NUL-terminated string inside the buffer (nullptr if malformed).
  const char* key(int i) const;

 private:
  bool read_uint(const uint8_t* p, int width, uint64_t* out) const;
  bool read_int(const uint8_t* p, int width, int64_t* out) const;
  bool in_bounds(const uint8_t* p, uint64_t n) const;
  // p - offset, checked against the start of the buffer.
  const uint8_t* back(const uint8_t* p, uint64_t offset) const;

  const uint8_t* begin_ = nullptr;
  const uint8_t* end_ = nullptr;
  const char* error_ = nullptr;
  const uint8_t* values_ = nullptr;  // first value slot of the map
  int width_ = 0;                    // byte width of the value slots
  uint64_t count_ = 0;
  const uint8_t* keys_ = nullptr;    // first key slot
  int key_width_ = 0;
};

}  // namespace flex
}  // namespace sbnn
