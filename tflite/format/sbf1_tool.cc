// sbf1_tool: decode SBF1 files to LCE bitpacked filter words (differential tests,
// fuzzing corpus checks). Usage: sbf1_tool IN OUT  -> exit 0 and OUT = words (LE
// int32) on success; exit 2 and the error on stderr when the data is rejected.
#include <cstdio>
#include <vector>

#include "sparse_filter.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s IN OUT\n", argv[0]);
    return 1;
  }
  std::FILE* f = std::fopen(argv[1], "rb");
  if (!f) return 1;
  std::vector<uint8_t> data;
  uint8_t buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) data.insert(data.end(), buf, buf + n);
  std::fclose(f);
  char error[256] = {0};
  sbnn::sbf1::Header h;
  if (!sbnn::sbf1::ParseHeader(data.data(), data.size(), &h, error, sizeof error)) {
    std::fprintf(stderr, "%s\n", error);
    return 2;
  }
  std::vector<int32_t> words(sbnn::sbf1::PackedWords(h));
  if (!sbnn::sbf1::DecodeToPacked(data.data(), data.size(), h, words.data(), words.size(), error,
                                  sizeof error)) {
    std::fprintf(stderr, "%s\n", error);
    return 2;
  }
  std::FILE* out = std::fopen(argv[2], "wb");
  if (!out) return 1;
  std::fwrite(words.data(), sizeof(int32_t), words.size(), out);
  std::fclose(out);
  return 0;
}
