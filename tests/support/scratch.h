// Scratch space for a test: a directory of its own, removed with what it
// holds; file bytes in and out; deterministic test data; and a fingerprint
// of a directory tree, to show that a refused request changed nothing.

#ifndef COWBLK_TESTS_SUPPORT_SCRATCH_H_
#define COWBLK_TESTS_SUPPORT_SCRATCH_H_

#include <time.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace cowblk::testing {

// A fresh directory, removed with its contents when the object goes.
class TempDir {
 public:
  // Under $TMPDIR (or /tmp).
  TempDir();
  // Under `base`: for tests that need a particular filesystem (O_DIRECT,
  // which tmpfs refuses). path() is empty on failure.
  explicit TempDir(const std::string& base);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path()/name.
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The whole file ("" if it cannot be read).
std::string ReadFileBytes(const std::string& path);

// Replaces the file's contents with `bytes`, creating it if needed.
void WriteFileBytes(const std::string& path, const std::string& bytes);

// `n` pseudo-random bytes, the same for the same `seed`.
std::string RandomBytes(size_t n, uint32_t seed);

// Sets the file's access and modification times to `mtime` (seconds).
void SetMtime(const std::string& path, time_t mtime);

// Every regular file under `dir`, one line each: its path, size and a hash
// of its bytes, sorted. Equal results mean nothing under `dir` changed.
std::string TreeState(const std::string& dir);

}  // namespace cowblk::testing

#endif  // COWBLK_TESTS_SUPPORT_SCRATCH_H_
