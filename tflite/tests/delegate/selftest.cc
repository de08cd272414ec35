// Native self-tests of the delegate's own parts (run by ctest; worth running
// under SBNN_SANITIZE=ON): ABI self-check, the flexbuffer reader on real LCE
// option buffers and on every truncation and single-byte corruption of them,
// the thread pool, and the C API's option validation.
#include <atomic>
#include <chrono>
#include <thread>
#include <cstdio>
#include <cstring>
#include <vector>

#include "abi/tflite_abi.h"
#include "delegate/flexbuffer.h"
#include "delegate/thread_pool.h"
#include "sbnn_delegate.h"

namespace {

int g_failures = 0;

#define CHECK(cond)                                                  \
  do {                                                               \
    if (!(cond)) {                                                   \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++g_failures;                                                  \
    }                                                                \
  } while (0)

// Custom options of an LceBconv2d node written by LCE 0.16's converter
// (channels_in 20, dilations 1, no activation, pad_values 0, SAME, strides 1).
const unsigned char kBconvOptions[] = {
    0x63, 0x68, 0x61, 0x6e, 0x6e, 0x65, 0x6c, 0x73, 0x5f, 0x69, 0x6e, 0x00, 0x64, 0x69, 0x6c, 0x61,
    0x74, 0x69, 0x6f, 0x6e, 0x5f, 0x68, 0x65, 0x69, 0x67, 0x68, 0x74, 0x5f, 0x66, 0x61, 0x63, 0x74,
    0x6f, 0x72, 0x00, 0x64, 0x69, 0x6c, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x5f, 0x77, 0x69, 0x64, 0x74,
    0x68, 0x5f, 0x66, 0x61, 0x63, 0x74, 0x6f, 0x72, 0x00, 0x66, 0x75, 0x73, 0x65, 0x64, 0x5f, 0x61,
    0x63, 0x74, 0x69, 0x76, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x5f, 0x66, 0x75, 0x6e, 0x63, 0x74, 0x69,
    0x6f, 0x6e, 0x00, 0x70, 0x61, 0x64, 0x5f, 0x76, 0x61, 0x6c, 0x75, 0x65, 0x73, 0x00, 0x70, 0x61,
    0x64, 0x64, 0x69, 0x6e, 0x67, 0x00, 0x73, 0x74, 0x72, 0x69, 0x64, 0x65, 0x5f, 0x68, 0x65, 0x69,
    0x67, 0x68, 0x74, 0x00, 0x73, 0x74, 0x72, 0x69, 0x64, 0x65, 0x5f, 0x77, 0x69, 0x64, 0x74, 0x68,
    0x00, 0x08, 0x82, 0x77, 0x61, 0x4c, 0x33, 0x29, 0x22, 0x15, 0x08, 0x01, 0x08, 0x14, 0x01, 0x01,
    0x00, 0x00, 0x00, 0x01, 0x01, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x10, 0x24, 0x01};

// Custom options of an LceBMaxPool2d node (2x2 window, stride 2, VALID).
const unsigned char kPoolOptions[] = {
    0x70, 0x61, 0x64, 0x64, 0x69, 0x6e, 0x67, 0x00, 0x73, 0x74, 0x72, 0x69, 0x64, 0x65, 0x5f,
    0x77, 0x69, 0x64, 0x74, 0x68, 0x00, 0x73, 0x74, 0x72, 0x69, 0x64, 0x65, 0x5f, 0x68, 0x65,
    0x69, 0x67, 0x68, 0x74, 0x00, 0x66, 0x69, 0x6c, 0x74, 0x65, 0x72, 0x5f, 0x77, 0x69, 0x64,
    0x74, 0x68, 0x00, 0x66, 0x69, 0x6c, 0x74, 0x65, 0x72, 0x5f, 0x68, 0x65, 0x69, 0x67, 0x68,
    0x74, 0x00, 0x05, 0x0f, 0x1d, 0x41, 0x2d, 0x3b, 0x05, 0x01, 0x05, 0x02, 0x02, 0x01, 0x02,
    0x02, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0a, 0x24, 0x01};

int64_t get(const sbnn::flex::MapReader& m, const char* key) {
  int64_t v = -999;
  return m.get_int(key, &v) == sbnn::flex::Lookup::kOk ? v : -999;
}

void test_flexbuffer_valid() {
  sbnn::flex::MapReader m(kBconvOptions, sizeof(kBconvOptions));
  CHECK(m.ok());
  CHECK(m.size() == 8);
  CHECK(get(m, "channels_in") == 20);
  CHECK(get(m, "stride_height") == 1);
  CHECK(get(m, "stride_width") == 1);
  CHECK(get(m, "dilation_height_factor") == 1);
  CHECK(get(m, "padding") == 0);
  CHECK(get(m, "pad_values") == 0);
  CHECK(get(m, "fused_activation_function") == 0);
  int64_t v = 0;
  CHECK(m.get_int("no_such_key", &v) == sbnn::flex::Lookup::kMissing);

  sbnn::flex::MapReader p(kPoolOptions, sizeof(kPoolOptions));
  CHECK(p.ok());
  CHECK(get(p, "filter_height") == 2);
  CHECK(get(p, "filter_width") == 2);
  CHECK(get(p, "stride_height") == 2);
  CHECK(get(p, "padding") == 1);
  CHECK(p.key(0) != nullptr && std::strcmp(p.key(0), "filter_height") == 0);
}

// Every truncation and every single-byte change must be handled without reading
// outside the buffer (ASan checks that: each case gets an exact-size heap copy).
void test_flexbuffer_corrupt(const unsigned char* data, size_t size) {
  const char* keys[] = {"channels_in", "padding", "stride_width", "filter_height", "x"};
  for (size_t n = 0; n <= size; ++n) {
    std::vector<unsigned char> buf(data + size - n, data + size);  // suffixes: root stays last
    sbnn::flex::MapReader m(buf.empty() ? nullptr : buf.data(), buf.size());
    for (const char* k : keys) {
      int64_t v;
      (void)m.get_int(k, &v);
    }
    std::vector<unsigned char> prefix(data, data + n);  // prefixes: root is garbage
    sbnn::flex::MapReader q(prefix.empty() ? nullptr : prefix.data(), prefix.size());
    for (const char* k : keys) {
      int64_t v;
      (void)q.get_int(k, &v);
    }
  }
  const unsigned char patterns[] = {0x00, 0x01, 0x7f, 0x80, 0xff, 0x24, 0x25, 0x27, 0x0b};
  for (size_t i = 0; i < size; ++i) {
    for (unsigned char b : patterns) {
      std::vector<unsigned char> buf(data, data + size);
      buf[i] = b;
      sbnn::flex::MapReader m(buf.data(), buf.size());
      for (const char* k : keys) {
        int64_t v;
        (void)m.get_int(k, &v);
      }
      for (int j = 0; j < m.size(); ++j) (void)m.key(j);
    }
  }
}

void test_thread_pool() {
  // Every task runs exactly once per call, for spinning (default) and sleeping
  // (spin_us = 0) workers, task counts around the thread count, and back-to-back
  // calls that reuse the same workers (the generation handover).
  for (int spin_us : {sbnn::ThreadPool::kDefaultSpinUs, 0}) {
    for (int threads : {1, 2, 3}) {
      sbnn::ThreadPool pool(threads, spin_us);
      for (int round = 0; round < 2000; ++round) {
        const int n = 1 + round % 37;
        std::vector<std::atomic<int>> hits(n);
        for (auto& h : hits) h = 0;
        pool.parallel_for(
            n, [](void* ctx, int t) { (*static_cast<std::vector<std::atomic<int>>*>(ctx))[t]++; },
            &hits);
        for (auto& h : hits) CHECK(h.load() == 1);
        if (round % 500 == 499) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
  }
  // Several callers sharing one pool (calls are serialised).
  sbnn::ThreadPool pool(3);
  std::atomic<int> bad{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c)
    callers.emplace_back([&pool, &bad, c] {
      for (int round = 0; round < 300; ++round) {
        const int n = 1 + (round + c) % 19;
        std::vector<std::atomic<int>> hits(n);
        for (auto& h : hits) h = 0;
        pool.parallel_for(
            n, [](void* ctx, int t) { (*static_cast<std::vector<std::atomic<int>>*>(ctx))[t]++; },
            &hits);
        for (auto& h : hits)
          if (h.load() != 1) bad++;
      }
    });
  for (auto& t : callers) t.join();
  CHECK(bad.load() == 0);
}

void test_c_api() {
  CHECK(sbnn::abi::abi_self_check() == nullptr);
  SbnnDelegateOptions o = sbnn_delegate_options_default();
  CHECK(sbnn_delegate_create(&o) == nullptr);  // runtime_version missing
  CHECK(std::strstr(sbnn_delegate_last_error(), "runtime_version") != nullptr);
  o.runtime_version = "2.99.0";
  CHECK(sbnn_delegate_create(&o) == nullptr);
  CHECK(std::strstr(sbnn_delegate_last_error(), "2.99.0") != nullptr);
  o.runtime_version = "2.16.2";
  o.num_threads = 0;
  CHECK(sbnn_delegate_create(&o) == nullptr);
  o.num_threads = 2;
  o.kernel = "no_such_kernel";
  CHECK(sbnn_delegate_create(&o) == nullptr);
  CHECK(std::strstr(sbnn_delegate_last_error(), "no_such_kernel") != nullptr);
  o.kernel = "reference";
  struct TfLiteDelegate* d = sbnn_delegate_create(&o);
  CHECK(d != nullptr);
  char buf[256];
  CHECK(sbnn_delegate_describe(d, buf, sizeof(buf)) > 0);
  CHECK(std::strstr(buf, "num_threads=2") != nullptr);
  sbnn_delegate_delete(d);

  char k0[] = "runtime", v0[] = "tensorflow", k1[] = "runtime_version", v1[] = "2.16.2";
  char k2[] = "num_threads", v2[] = "x";
  char* keys[] = {k0, k1, k2};
  char* values[] = {v0, v1, v2};
  CHECK(tflite_plugin_create_delegate(keys, values, 3, nullptr) == nullptr);
  d = tflite_plugin_create_delegate(keys, values, 2, nullptr);
  CHECK(d != nullptr);
  tflite_plugin_destroy_delegate(d);
  CHECK(std::strstr(sbnn_delegate_kernels(), "reference") != nullptr);
}

}  // namespace

int main() {
  test_flexbuffer_valid();
  test_flexbuffer_corrupt(kBconvOptions, sizeof(kBconvOptions));
  test_flexbuffer_corrupt(kPoolOptions, sizeof(kPoolOptions));
  test_thread_pool();
  test_c_api();
  if (g_failures != 0) {
    std::fprintf(stderr, "%d check(s) failed\n", g_failures);
    return 1;
  }
  std::printf("sbnn_delegate_selftest: all checks passed\n");
  return 0;
}
