// A small, bounds-checked reader for the parts of a .tflite flatbuffer (schema v3)
// that TFLite's InterpreterBuilder turns into tensors and nodes: buffers, tensors
// (shape, type, buffer, quantization), operator codes and operators (inputs,
// outputs, custom options) of subgraph 0. Used by the fuzz harness fuzz_model.cc
// to build the fake runtime's graph from mutated real models, so that every byte of
// a model that TFLite would hand to the delegate (option bytes, shapes, types,
// constant data, tensor indices) can be fuzzed without TensorFlow in the process.
//
// Every read is checked against the buffer; a malformed model yields false and a
// message (like TFLite's verifier rejecting it), never a read outside the input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace sbnn_fuzz {

struct TfliteTensor {
  std::vector<int> shape;
  int type = 0;  // schema TensorType
  uint32_t buffer = 0;
  bool has_scale = false;
  float scale = 0.0f;
  int64_t zero_point = 0;
};

struct TfliteOperator {
  uint32_t opcode_index = 0;
  std::vector<int> inputs, outputs;
  std::vector<uint8_t> custom_options;
};

struct TfliteOpCode {
  int32_t builtin_code = 0;
  std::string custom_code;
  bool has_custom_code = false;
};

struct TfliteModel {
  std::vector<std::vector<uint8_t>> buffers;
  std::vector<TfliteOpCode> opcodes;
  std::vector<TfliteTensor> tensors;
  std::vector<int> inputs, outputs;
  std::vector<TfliteOperator> operators;
};

class FlatReader {
 public:
  FlatReader(const uint8_t* data, size_t size) : d_(data), n_(size) {}

  bool u8(uint64_t at, uint8_t* v) const {
    if (at >= n_) return false;
    *v = d_[at];
    return true;
  }
  bool u16(uint64_t at, uint16_t* v) const { return raw(at, v, 2); }
  bool u32(uint64_t at, uint32_t* v) const { return raw(at, v, 4); }
  bool i32(uint64_t at, int32_t* v) const { return raw(at, v, 4); }
  bool i64(uint64_t at, int64_t* v) const { return raw(at, v, 8); }
  bool f32(uint64_t at, float* v) const { return raw(at, v, 4); }

  // Position of the table's field `id` (0 when absent); false when malformed.
  bool field(uint64_t table, int id, uint64_t* pos) const {
    int32_t soff = 0;
    if (!i32(table, &soff)) return false;
    const int64_t vt = static_cast<int64_t>(table) - soff;
    if (vt < 0 || static_cast<uint64_t>(vt) + 4 > n_) return false;
    uint16_t vt_size = 0, tbl_size = 0;
    if (!u16(static_cast<uint64_t>(vt), &vt_size) || !u16(static_cast<uint64_t>(vt) + 2, &tbl_size))
      return false;
    if (vt_size < 4 || (vt_size & 1) || static_cast<uint64_t>(vt) + vt_size > n_) return false;
    if (table + tbl_size > n_) return false;
    *pos = 0;
    const uint64_t slot = 4 + 2 * static_cast<uint64_t>(id);
    if (slot + 2 > vt_size) return true;  // older writer: field absent
    uint16_t off = 0;
    if (!u16(static_cast<uint64_t>(vt) + slot, &off)) return false;
    if (off == 0) return true;
    if (off >= tbl_size) return false;
    *pos = table + off;
    return true;
  }

  // Follows the uoffset stored at `pos`.
  bool deref(uint64_t pos, uint64_t* target) const {
    uint32_t off = 0;
    if (!u32(pos, &off) || off == 0) return false;
    *target = pos + off;
    return *target < n_;
  }

  // Vector at `pos` (after deref): element count and position of the first element.
  bool vec(uint64_t pos, uint64_t elem_size, uint32_t* count, uint64_t* first) const {
    if (!u32(pos, count)) return false;
    *first = pos + 4;
    return *first + uint64_t{*count} * elem_size <= n_;
  }

  // Field `id` of `table` as a vector: absent -> count 0.
  bool field_vec(uint64_t table, int id, uint64_t elem_size, uint32_t* count,
                 uint64_t* first) const {
    uint64_t pos = 0, target = 0;
    *count = 0;
    *first = 0;
    if (!field(table, id, &pos)) return false;
    if (pos == 0) return true;
    return deref(pos, &target) && vec(target, elem_size, count, first);
  }

  bool field_ints(uint64_t table, int id, std::vector<int>* out, uint32_t limit) const {
    uint32_t count = 0;
    uint64_t first = 0;
    if (!field_vec(table, id, 4, &count, &first) || count > limit) return false;
    out->resize(count);
    for (uint32_t i = 0; i < count; ++i)
      if (!i32(first + 4ull * i, &(*out)[i])) return false;
    return true;
  }

  // Table `i` of a vector of tables.
  bool table_at(uint64_t first, uint32_t i, uint64_t* table) const {
    return deref(first + 4ull * i, table);
  }

  size_t size() const { return n_; }
  const uint8_t* data() const { return d_; }

 private:
  bool raw(uint64_t at, void* v, size_t k) const {
    if (at > n_ || k > n_ - at) return false;
    std::memcpy(v, d_ + at, k);
    return true;
  }
  const uint8_t* d_;
  size_t n_;
};

// Parses subgraph 0 of a .tflite model. Limits keep the harness's memory bounded.
inline bool ParseTflite(const uint8_t* data, size_t size, TfliteModel* m, std::string* error) {
  constexpr uint32_t kMaxItems = 4096;
  FlatReader r(data, size);
  auto bad = [&](const char* what) {
    *error = what;
    return false;
  };
  if (size < 8 || std::memcmp(data + 4, "TFL3", 4) != 0) return bad("no TFL3 identifier");
  uint64_t root = 0;
  if (!r.deref(0, &root)) return bad("root offset");

  uint32_t n = 0;
  uint64_t first = 0;
  // Model.buffers (field 4)
  if (!r.field_vec(root, 4, 4, &n, &first) || n > kMaxItems) return bad("buffers");
  m->buffers.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    uint64_t t = 0;
    if (!r.table_at(first, i, &t)) return bad("buffer table");
    uint32_t len = 0;
    uint64_t bytes = 0;
    if (!r.field_vec(t, 0, 1, &len, &bytes)) return bad("buffer data");
    m->buffers[i].assign(data + bytes, data + bytes + len);
  }
  // Model.operator_codes (field 1)
  if (!r.field_vec(root, 1, 4, &n, &first) || n > kMaxItems) return bad("operator codes");
  m->opcodes.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    uint64_t t = 0, pos = 0;
    if (!r.table_at(first, i, &t)) return bad("opcode table");
    TfliteOpCode& oc = m->opcodes[i];
    int32_t code = 0;
    if (!r.field(t, 0, &pos)) return bad("opcode field");
    if (pos) {
      uint8_t b = 0;
      if (!r.u8(pos, &b)) return bad("deprecated_builtin_code");
      code = static_cast<int8_t>(b);
    }
    if (!r.field(t, 3, &pos)) return bad("opcode field");
    if (pos) {
      int32_t c = 0;
      if (!r.i32(pos, &c)) return bad("builtin_code");
      code = c > code ? c : code;  // TFLite's GetBuiltinCode: the larger of the two
    }
    oc.builtin_code = code;
    if (!r.field(t, 1, &pos)) return bad("opcode field");
    if (pos) {
      uint64_t s = 0, chars = 0;
      uint32_t len = 0;
      if (!r.deref(pos, &s) || !r.vec(s, 1, &len, &chars) || chars + len >= size ||
          data[chars + len] != 0)
        return bad("custom_code string");
      oc.custom_code.assign(reinterpret_cast<const char*>(data + chars), len);
      oc.has_custom_code = true;
    }
  }
  // Model.subgraphs (field 2): only the first.
  if (!r.field_vec(root, 2, 4, &n, &first) || n == 0) return bad("subgraphs");
  uint64_t sg = 0;
  if (!r.table_at(first, 0, &sg)) return bad("subgraph table");
  if (!r.field_ints(sg, 1, &m->inputs, kMaxItems) || !r.field_ints(sg, 2, &m->outputs, kMaxItems))
    return bad("subgraph inputs/outputs");
  if (!r.field_vec(sg, 0, 4, &n, &first) || n > kMaxItems) return bad("tensors");
  m->tensors.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    uint64_t t = 0, pos = 0;
    if (!r.table_at(first, i, &t)) return bad("tensor table");
    TfliteTensor& tt = m->tensors[i];
    if (!r.field_ints(t, 0, &tt.shape, 16)) return bad("tensor shape");
    if (!r.field(t, 1, &pos)) return bad("tensor field");
    if (pos) {
      uint8_t b = 0;
      if (!r.u8(pos, &b)) return bad("tensor type");
      tt.type = static_cast<int8_t>(b);
    }
    if (!r.field(t, 2, &pos)) return bad("tensor field");
    if (pos && !r.u32(pos, &tt.buffer)) return bad("tensor buffer");
    if (!r.field(t, 4, &pos)) return bad("tensor field");
    if (pos) {
      uint64_t q = 0;
      if (!r.deref(pos, &q)) return bad("quantization table");
      uint32_t ns = 0, nz = 0;
      uint64_t fs = 0, fz = 0;
      if (!r.field_vec(q, 2, 4, &ns, &fs) || !r.field_vec(q, 3, 8, &nz, &fz))
        return bad("quantization vectors");
      if (ns >= 1) {
        tt.has_scale = true;
        if (!r.f32(fs, &tt.scale)) return bad("scale");
        if (nz >= 1 && !r.i64(fz, &tt.zero_point)) return bad("zero point");
      }
    }
  }
  if (!r.field_vec(sg, 3, 4, &n, &first) || n > kMaxItems) return bad("operators");
  m->operators.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    uint64_t t = 0, pos = 0;
    if (!r.table_at(first, i, &t)) return bad("operator table");
    TfliteOperator& op = m->operators[i];
    if (!r.field(t, 0, &pos)) return bad("operator field");
    if (pos && !r.u32(pos, &op.opcode_index)) return bad("opcode index");
    if (!r.field_ints(t, 1, &op.inputs, 64) || !r.field_ints(t, 2, &op.outputs, 64))
      return bad("operator inputs/outputs");
    uint32_t len = 0;
    uint64_t bytes = 0;
    if (!r.field_vec(t, 5, 1, &len, &bytes)) return bad("custom options");
    op.custom_options.assign(data + bytes, data + bytes + len);
  }
  return true;
}

}  // namespace sbnn_fuzz
