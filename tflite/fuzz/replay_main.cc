// A main() for the fuzz harnesses when they are not linked with libFuzzer (any
// compiler, e.g. g++ with or without sanitizers): runs LLVMFuzzerTestOneInput on
// every file named on the command line or found in a named directory (the seed
// corpus and the crash regressions), like `harness -runs=0 DIR...` would.
//   replay_fuzz_model tflite/fuzz/corpus/model tflite/fuzz/regressions/model
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

void collect(const std::string& path, std::vector<std::string>* files) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    std::fprintf(stderr, "replay: cannot stat %s\n", path.c_str());
    std::exit(2);
  }
  if (S_ISREG(st.st_mode)) {
    files->push_back(path);
    return;
  }
  if (!S_ISDIR(st.st_mode)) return;
  DIR* d = opendir(path.c_str());
  if (d == nullptr) return;
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    const std::string n = e->d_name;
    if (n == "." || n == ".." || n[0] == '.' || n == "README.md") continue;
    names.push_back(n);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  for (const auto& n : names) collect(path + "/" + n, files);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    if (argv[i][0] == '-') continue;  // libFuzzer-style flags are ignored
    collect(argv[i], &files);
  }
  for (const auto& f : files) {
    std::FILE* fp = std::fopen(f.c_str(), "rb");
    if (fp == nullptr) {
      std::fprintf(stderr, "replay: cannot open %s\n", f.c_str());
      return 2;
    }
    std::vector<uint8_t> data;
    uint8_t buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), fp)) > 0) data.insert(data.end(), buf, buf + n);
    std::fclose(fp);
    std::fprintf(stderr, "replay: %s (%zu bytes)\n", f.c_str(), data.size());
    // An exact-size heap copy, as libFuzzer hands it over (ASan sees overreads).
    uint8_t* copy = new uint8_t[data.size() ? data.size() : 1];
    std::copy(data.begin(), data.end(), copy);
    LLVMFuzzerTestOneInput(data.empty() ? nullptr : copy, data.size());
    delete[] copy;
  }
  std::printf("replayed %zu inputs\n", files.size());
  return 0;
}
