// Helpers shared by the C++ tests: temporary directories and file bytes.

#ifndef COWBLK_TESTS_UNIT_TEST_UTIL_H_
#define COWBLK_TESTS_UNIT_TEST_UTIL_H_

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

namespace cowblk::testing {

// A fresh directory under $TMPDIR (or /tmp) by default, removed with its
// contents.
class TempDir {
 public:
  TempDir() : TempDir(getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp") {}
  // A fresh directory under `base`: for tests that need a particular
  // filesystem (O_DIRECT, which tmpfs refuses). path() is empty on failure.
  explicit TempDir(const std::string& base) {
    std::string tmpl = base + "/cowblk-test-XXXXXX";
    if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void WriteFileBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Deterministic pseudo-random bytes.
inline std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

inline void SetMtime(const std::string& path, time_t mtime) {
  struct timespec times[2] = {{mtime, 0}, {mtime, 0}};
  utimensat(AT_FDCWD, path.c_str(), times, 0);
}

}  // namespace cowblk::testing

#endif  // COWBLK_TESTS_UNIT_TEST_UTIL_H_
