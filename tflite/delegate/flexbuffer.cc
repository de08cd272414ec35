// Bounds-checked flexbuffer map reader (see flexbuffer.h).
//
// Format facts used (flexbuffers, little-endian):
//   * the last byte of the buffer is the root's byte width, the byte before it
//     the root's packed type, and the root value sits just before those two;
//   * a packed type byte is (type << 2) | log2(child byte width);
//   * a map value is an unsigned offset, counted backwards from where it is
//     stored, to the map's value slots; before the slots sit (from nearer to
//     farther) the element count, the key vector's byte width and a backwards
//     offset to the key vector; after the slots, one packed type byte per value;
//   * the key vector's slots are backwards offsets to NUL-terminated strings,
//     and its element count sits just before its first slot.
#include "delegate/flexbuffer.h"

#include <cstring>

namespace sbnn {
namespace flex {
namespace {

enum FlexType : int {
  kNull = 0,
  kInt = 1,
  kUInt = 2,
  kFloat = 3,
  kKey = 4,
  kString = 5,
  kIndirectInt = 6,
  kIndirectUInt = 7,
  kIndirectFloat = 8,
  kMap = 9,
  kBool = 26,
};

bool valid_width(uint64_t w) { return w == 1 || w == 2 || w == 4 || w == 8; }

constexpr uint64_t kMaxElements = uint64_t{1} << 20;

}  // namespace

bool MapReader::in_bounds(const uint8_t* p, uint64_t n) const {
  if (p < begin_ || p > end_) return false;
  return n <= static_cast<uint64_t>(end_ - p);
}

const uint8_t* MapReader::back(const uint8_t* p, uint64_t offset) const {
  if (p < begin_ || p > end_) return nullptr;
  if (offset > static_cast<uint64_t>(p - begin_)) return nullptr;
  return p - offset;
}

bool MapReader::read_uint(const uint8_t* p, int width, uint64_t* out) const {
  if (!valid_width(static_cast<uint64_t>(width)) || !in_bounds(p, static_cast<uint64_t>(width)))
    return false;
  uint64_t v = 0;
  for (int i = width - 1; i >= 0; --i) v = (v << 8) | p[i];
  *out = v;
  return true;
}

bool MapReader::read_int(const uint8_t* p, int width, int64_t* out) const {
  uint64_t u = 0;
  if (!read_uint(p, width, &u)) return false;
  if (width < 8) {
    const uint64_t sign = uint64_t{1} << (8 * width - 1);
    if (u & sign) u |= ~((sign << 1) - 1);  // sign-extend
  }
  std::memcpy(out, &u, sizeof(u));
  return true;
}

MapReader::MapReader(const void* data, size_t size) {
  if (data == nullptr || size < 3) {
    error_ = "custom options are missing or shorter than a flexbuffer root";
    return;
  }
  begin_ = static_cast<const uint8_t*>(data);
  end_ = begin_ + size;

  const uint64_t root_width = end_[-1];
  const uint8_t root_packed = end_[-2];
  if (!valid_width(root_width) || root_width + 2 > size) {
    error_ = "flexbuffer root has an invalid byte width";
    return;
  }
  const int type = root_packed >> 2;
  if (type != kMap) {
    error_ = "custom options are not a flexbuffer map";
    return;
  }
  width_ = 1 << (root_packed & 3);
  const uint8_t* root = end_ - 2 - root_width;
  uint64_t offset = 0;
  // Offset 0 is what flexbuffers writes for an empty map (no value slots).
  if (!read_uint(root, static_cast<int>(root_width), &offset)) {
    error_ = "flexbuffer map offset is invalid";
    return;
  }
  values_ = back(root, offset);
  if (values_ == nullptr) {
    error_ = "flexbuffer map offset points before the buffer";
    return;
  }
  // Header before the value slots: [keys offset][keys width][count] | slots.
  const uint8_t* count_at = back(values_, static_cast<uint64_t>(width_));
  const uint8_t* keys_width_at = back(values_, 2ull * width_);
  const uint8_t* keys_offset_at = back(values_, 3ull * width_);
  uint64_t keys_width = 0, keys_offset = 0;
  if (count_at == nullptr || keys_width_at == nullptr || keys_offset_at == nullptr ||
      !read_uint(count_at, width_, &count_) || !read_uint(keys_width_at, width_, &keys_width) ||
      !read_uint(keys_offset_at, width_, &keys_offset)) {
    error_ = "flexbuffer map header is outside the buffer";
    return;
  }
  if (count_ > kMaxElements) {
    error_ = "flexbuffer map has an implausible number of entries";
    return;
  }
  // Value slots and their packed-type bytes must be inside the buffer.
  if (!in_bounds(values_, count_ * static_cast<uint64_t>(width_) + count_)) {
    error_ = "flexbuffer map values run past the end of the buffer";
    return;
  }
  if (!valid_width(keys_width)) {
    error_ = "flexbuffer key vector has an invalid byte width";
    return;
  }
  key_width_ = static_cast<int>(keys_width);
  keys_ = back(keys_offset_at, keys_offset);
  if (keys_ == nullptr) {  // (0 for an empty map, as flexbuffers writes it)
    error_ = "flexbuffer key vector offset is invalid";
    return;
  }
  uint64_t key_count = 0;
  const uint8_t* key_count_at = back(keys_, static_cast<uint64_t>(key_width_));
  if (key_count_at == nullptr || !read_uint(key_count_at, key_width_, &key_count) ||
      key_count != count_) {
    error_ = "flexbuffer key vector does not match the map";
    return;
  }
  if (!in_bounds(keys_, count_ * static_cast<uint64_t>(key_width_))) {
    error_ = "flexbuffer key vector runs past the end of the buffer";
    return;
  }
  for (uint64_t i = 0; i < count_; ++i) {
    if (key(static_cast<int>(i)) == nullptr) {
      error_ = "flexbuffer key is not a terminated string inside the buffer";
      return;
    }
  }
}

const char* MapReader::key(int i) const {
  if (keys_ == nullptr || i < 0 || static_cast<uint64_t>(i) >= count_) return nullptr;
  const uint8_t* slot = keys_ + static_cast<uint64_t>(i) * key_width_;
  uint64_t offset = 0;
  if (!read_uint(slot, key_width_, &offset) || offset == 0) return nullptr;
  const uint8_t* s = back(slot, offset);
  if (s == nullptr) return nullptr;
  const void* nul = std::memchr(s, 0, static_cast<size_t>(end_ - s));
  return nul == nullptr ? nullptr : reinterpret_cast<const char*>(s);
}

Lookup MapReader::get_int(const char* name, int64_t* value) const {
  if (!ok()) return Lookup::kMissing;
  for (uint64_t i = 0; i < count_; ++i) {
    const char* k = key(static_cast<int>(i));
    if (k == nullptr || std::strcmp(k, name) != 0) continue;
    const uint8_t* slot = values_ + i * static_cast<uint64_t>(width_);
    const uint8_t packed = values_[count_ * static_cast<uint64_t>(width_) + i];
    const int type = packed >> 2;
    const int child_width = 1 << (packed & 3);
    switch (type) {
      case kInt:
        return read_int(slot, width_, value) ? Lookup::kOk : Lookup::kNotInt;
      case kUInt:
      case kBool: {
        uint64_t u = 0;
        if (!read_uint(slot, width_, &u) || u > static_cast<uint64_t>(INT64_MAX))
          return Lookup::kNotInt;
        *value = static_cast<int64_t>(u);
        return Lookup::kOk;
      }
      case kIndirectInt:
      case kIndirectUInt: {
        uint64_t offset = 0;
        if (!read_uint(slot, width_, &offset)) return Lookup::kNotInt;
        const uint8_t* target = back(slot, offset);
        if (target == nullptr) return Lookup::kNotInt;
        if (type == kIndirectInt) return read_int(target, child_width, value) ? Lookup::kOk
                                                                              : Lookup::kNotInt;
        uint64_t u = 0;
        if (!read_uint(target, child_width, &u) || u > static_cast<uint64_t>(INT64_MAX))
          return Lookup::kNotInt;
        *value = static_cast<int64_t>(u);
        return Lookup::kOk;
      }
      default:
        return Lookup::kNotInt;
    }
  }
  return Lookup::kMissing;
}

}  // namespace flex
}  // namespace sbnn
