// Runs an engine test's modes on both I/O backends (loop_io.h): every mode
// once on io_uring under its own name and once on the worker threads
// backend as NAMEThreads. A Mode here is any struct with a std::string
// `name` and an IoBackendKind `backend`.

#ifndef COWBLK_TESTS_ENGINE_BACKENDS_H_
#define COWBLK_TESTS_ENGINE_BACKENDS_H_

#include <string>
#include <vector>

#include "server/engine/loop_io.h"

namespace cowblk::engine {

inline const char* BackendName(IoBackendKind kind) {
  return kind == IoBackendKind::kThreads ? "threads" : "uring";
}

template <typename Mode>
std::vector<Mode> OnBothBackends(const std::vector<Mode>& modes) {
  std::vector<Mode> all;
  for (Mode m : modes) {
    m.backend = IoBackendKind::kUring;
    all.push_back(m);
  }
  for (Mode m : modes) {
    m.backend = IoBackendKind::kThreads;
    m.name += "Threads";
    all.push_back(m);
  }
  return all;
}

}  // namespace cowblk::engine

#endif  // COWBLK_TESTS_ENGINE_BACKENDS_H_
