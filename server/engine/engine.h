// Engine: one thread that owns one io_uring and every volume assigned to it.
// Other threads hand it requests through a queue plus an eventfd that the
// ring itself waits on; completions come back through Request::done on the
// engine thread. EngineGroup spreads volumes over several engines.
//
// Thread-safety: every public method of Engine and EngineGroup may be called
// from any thread. Volume objects are touched only on their engine thread.

#ifndef COWBLK_SERVER_ENGINE_ENGINE_H_
#define COWBLK_SERVER_ENGINE_ENGINE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "server/cow/cow_file.h"
#include "server/engine/request.h"
#include "server/engine/volume.h"

namespace cowblk::engine {

class UringIo;

struct EngineOptions {
  unsigned ring_entries = 256;
};

class Engine {
 public:
  static absl::StatusOr<std::unique_ptr<Engine>> Start(const EngineOptions& options);
  // Stops the thread after every volume was closed. REQUIRES: no volumes.
  ~Engine();

  // Moves `file` onto this engine. The returned pointer stays valid until
  // CloseVolume; use it only with Submit and the thread-safe stats().
  absl::StatusOr<Volume*> OpenVolume(std::unique_ptr<cow::CowFile> file,
                                     const VolumeOptions& options);
  // Waits until the volume's requests completed, then closes its files.
  void CloseVolume(Volume* volume);
  // Queues `req` for `volume` (which must belong to this engine).
  void Submit(Volume* volume, Request* req);
  // Runs `fn` on the engine thread (tests, administrative work).
  void Post(std::function<void()> fn);
  // io_uring operations in flight (approximate when read from outside).
  size_t io_in_flight() const;

 private:
  Engine() = default;
  void Run();

  std::unique_ptr<UringIo> io_;
  VolumeIoSink sink_;
  std::thread thread_;

  std::mutex mu_;  // guards the inbox only
  std::vector<std::pair<Volume*, Request*>> inbox_;
  std::vector<std::function<void()>> posted_;
  bool stop_ = false;

  // Engine thread only.
  std::vector<std::unique_ptr<Volume>> volumes_;
  struct Closing {
    Volume* volume;
    std::function<void()> done;
  };
  std::vector<Closing> closing_;
  std::atomic<size_t> io_in_flight_{0};
};

// A fixed set of engines; volumes are placed round-robin.
class EngineGroup {
 public:
  static absl::StatusOr<std::unique_ptr<EngineGroup>> Start(int threads,
                                                             const EngineOptions& options);
  Engine* Pick();
  const std::vector<std::unique_ptr<Engine>>& engines() const { return engines_; }

 private:
  std::vector<std::unique_ptr<Engine>> engines_;
  std::atomic<size_t> next_{0};
};

}  // namespace cowblk::engine

#endif  // COWBLK_SERVER_ENGINE_ENGINE_H_
