// cowblk::Volume: one open volume of a cowblkd server, read and written like
// a file of `size()` bytes in 512-byte sectors.
//
//   auto volume = client.OpenVolume("disk0");
//   std::string buf(1 << 20, '\0');
//   absl::Status s = (*volume)->Read(0, buf.data(), buf.size());
//
// I/O travels over gRPC `Session` streams (one per lane, spread over the
// client's channels), many requests in flight, answered out of order:
//
// - Bounded window. At most VolumeOptions::max_in_flight wire requests are
//   in flight; more wait in the volume's queue, in submission order.
// - Chunks. A read or write larger than VolumeOptions::chunk_size is split
//   into chunks sent in parallel; the call completes once, with the first
//   failure of any chunk, when all chunks did. A failed write may have
//   written some of its chunks.
// - Deadlines. Every call has one (IoOptions::deadline, else
//   VolumeOptions::deadline). A call past it fails DEADLINE_EXCEEDED, even
//   if a request already reached the server: such a write may still land.
// - Reconnect. When a stream breaks (the server restarts, the connection
//   drops), its unanswered requests are sent again on a new stream, as often
//   as the deadline allows: reads, writes, trims and write-zeroes are
//   idempotent at block level; a flush is sent again only after every write
//   that was retried with it has completed. Requests the server answered
//   UNAVAILABLE (a volume closing) are retried the same way. A stream that
//   ends with a status that retrying cannot fix (NOT_FOUND: the volume was
//   deleted; PERMISSION_DENIED, UNAUTHENTICATED, ...) fails its requests
//   with that status.
// - Lost writes. Writes acknowledged but not yet covered by a flush live
//   in the server's page cache (or, with `--durability deferred`, wait for
//   their bitmap bits): a server that crashes may lose them. The server
//   then serves the volume with a new epoch; a volume that had such writes
//   fails its next flush DATA_LOSS, once (as fsync(2) reports a writeback
//   error), so a successful flush always means what it says. A clean
//   restart (SIGTERM) keeps the epoch and loses nothing.
//
// Offsets and lengths must be multiples of sector_size() (INVALID_ARGUMENT
// names the field) and lie within size() (OUT_OF_RANGE). A zero-length read
// or write succeeds at once, like pread(2) of 0 bytes.
//
// Thread-safety: every method may be called from any thread at once.
// Callbacks run on gRPC's or the library's threads: they must not block
// (no synchronous Volume call inside one) and must not destroy the Volume.
// Buffers passed to the asynchronous calls must stay valid, and untouched,
// until their callback ran or their future is ready.

#ifndef COWBLK_CLIENT_INCLUDE_COWBLK_VOLUME_H_
#define COWBLK_CLIENT_INCLUDE_COWBLK_VOLUME_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cowblk/export.h"
#include "cowblk/types.h"

namespace cowblk {

namespace internal {
class ClientCore;
class VolumeCore;
enum class OpKind;
struct ServedVolume;
}  // namespace internal

struct VolumeOptions {
  // Wire requests (chunks) in flight at once, across all lanes.
  int max_in_flight = 64;
  // Largest wire request of a read or write, a multiple of 512 up to 32 MiB
  // (the server's limit per request).
  uint32_t chunk_size = 1 << 20;
  // Session streams of this volume; 0: one per client channel.
  int lanes = 0;
  // Most wire requests sent in one gRPC message: requests that queue while
  // a stream is busy sending leave together (Session's `batch`), which cuts
  // the per-message cost at high queue depths. Never more than the server
  // takes (its --max-in-flight); 1: one request per message.
  int max_batch = 64;
  // The default deadline of this volume's calls; 0: the client's.
  std::chrono::milliseconds deadline{0};
  // Reads of at least `nbd_min_read_bytes` and writes of at least
  // `nbd_min_write_bytes` (per chunk) travel over the server's NBD export
  // when it has one (cowblkd --nbd-listen; the volume's GetVolume answer
  // says so) and the client uses neither TLS nor a token: NBD frames cost less than
  // HTTP/2's, a read lands in the caller's buffer with no copy, and the
  // server writes a write's data on the connection's own thread. Small
  // reads stay on the streams, which batch them better. The export is dialled at the host of ClientOptions::target; if it
  // cannot be reached, everything stays on the Session streams. Deadlines,
  // retries and flushes behave as on the streams (see above); a flush
  // covers writes acknowledged over either path.
  bool nbd = true;
  uint32_t nbd_min_read_bytes = 32 << 10;
  uint32_t nbd_min_write_bytes = 0;
};

// Called once when an asynchronous call completes.
using IoCallback = std::function<void(absl::Status)>;

class COWBLK_EXPORT Volume {
 public:
  // Waits for the calls in progress to complete, then closes the streams.
  ~Volume();
  Volume(const Volume&) = delete;
  Volume& operator=(const Volume&) = delete;

  // What GetVolume said when the volume was opened.
  const VolumeInfo& info() const { return info_; }
  const std::string& name() const { return info_.name; }
  uint64_t size() const { return info_.size_bytes; }
  uint32_t sector_size() const { return info_.sector_size; }

  // ---- Synchronous calls: return when the call completed. ---------------

  // Reads `length` bytes at `offset` into `buf`.
  absl::Status Read(uint64_t offset, void* buf, size_t length, const IoOptions& options = {});
  // Writes `length` bytes of `data` at `offset`; with options.fua, durable
  // before it returns.
  absl::Status Write(uint64_t offset, const void* data, size_t length,
                     const IoOptions& options = {});
  // Makes every write that completed before the call durable.
  absl::Status Flush(const IoOptions& options = {});
  // Discards a range: it reads as zeros afterwards.
  absl::Status Trim(uint64_t offset, uint64_t length, const IoOptions& options = {});
  // Sets a range to zeros without sending them.
  absl::Status WriteZeroes(uint64_t offset, uint64_t length, const IoOptions& options = {});

  // ---- Asynchronous calls with a callback. -------------------------------
  // Return at once; `done` runs once with the call's status (possibly before
  // the function returns, e.g. for an invalid argument).

  void ReadAsync(uint64_t offset, void* buf, size_t length, IoCallback done,
                 const IoOptions& options = {});
  void WriteAsync(uint64_t offset, const void* data, size_t length, IoCallback done,
                  const IoOptions& options = {});
  void FlushAsync(IoCallback done, const IoOptions& options = {});
  void TrimAsync(uint64_t offset, uint64_t length, IoCallback done, const IoOptions& options = {});
  void WriteZeroesAsync(uint64_t offset, uint64_t length, IoCallback done,
                        const IoOptions& options = {});

  // ---- Asynchronous calls with a future. ---------------------------------

  std::future<absl::Status> ReadAsync(uint64_t offset, void* buf, size_t length,
                                      const IoOptions& options = {});
  std::future<absl::Status> WriteAsync(uint64_t offset, const void* data, size_t length,
                                       const IoOptions& options = {});
  std::future<absl::Status> FlushAsync(const IoOptions& options = {});
  std::future<absl::Status> TrimAsync(uint64_t offset, uint64_t length,
                                      const IoOptions& options = {});
  std::future<absl::Status> WriteZeroesAsync(uint64_t offset, uint64_t length,
                                             const IoOptions& options = {});

  // Which ranges of [offset, offset+length) live in the COW file; length 0
  // means to the end. Unary calls (one per page of 10000 ranges), each with
  // the volume's default deadline.
  absl::StatusOr<std::vector<AllocationRange>> GetAllocation(uint64_t offset = 0,
                                                             uint64_t length = 0);
  // GetAllocation with the unallocated ranges split into what the image
  // holds and what reads as zeros (`zero`), as NBD block status wants it.
  // A server from before this call knows no zeros: it answers as
  // GetAllocation (every `zero` false, which is safe: data).
  absl::StatusOr<std::vector<AllocationRange>> GetExtents(uint64_t offset, uint64_t length);

  // Waits for the calls in progress, then closes the streams. Later calls
  // fail FAILED_PRECONDITION. Idempotent; the destructor calls it.
  void Close();

  VolumeStats stats() const;

 private:
  friend class Client;
  Volume(std::shared_ptr<internal::ClientCore> client, VolumeInfo info,
         const internal::ServedVolume& served, const VolumeOptions& options);

  // Checks, cuts into chunks and queues one call.
  void Submit(internal::OpKind kind, uint64_t offset, uint64_t length, void* dest, const void* src,
              IoCallback done, const IoOptions& options);

  std::shared_ptr<internal::ClientCore> client_;
  const VolumeInfo info_;
  VolumeOptions options_;  // with the deadline resolved
  std::unique_ptr<internal::VolumeCore> core_;
};

}  // namespace cowblk

#endif  // COWBLK_CLIENT_INCLUDE_COWBLK_VOLUME_H_
