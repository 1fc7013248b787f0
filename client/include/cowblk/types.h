// Plain descriptions of what a cowblkd server holds, as the client library
// returns them. Sizes and offsets are bytes.

#ifndef COWBLK_CLIENT_INCLUDE_COWBLK_TYPES_H_
#define COWBLK_CLIENT_INCLUDE_COWBLK_TYPES_H_

#include <chrono>
#include <cstdint>
#include <string>

#include "cowblk/export.h"

namespace cowblk {

enum class VolumeState {
  kUnknown,  // a state this library does not know (a newer server)
  kReady,    // open and serving requests
  kError,    // on disk but not servable; VolumeInfo::error says why
};

// Returns "ready", "error" or "unknown".
COWBLK_EXPORT const char* VolumeStateName(VolumeState state);

// A volume: a copy-on-write disk over a read-only image (or a blank base).
struct VolumeInfo {
  std::string name;
  uint64_t size_bytes = 0;       // device size, a multiple of sector_size
  uint32_t sector_size = 512;    // always 512 today
  uint64_t allocated_bytes = 0;  // bytes that live in the COW file
  std::string image;             // the image it is layered over; empty: blank
  VolumeState state = VolumeState::kUnknown;
  std::string error;  // why state is kError
};

// The server (Client::GetServerInfo): version, the file system of its data
// directory, its volumes, its NBD export.
struct ServerInfo {
  std::string version;  // "0.1.0"
  std::string commit;   // the git commit it was built from
  uint64_t capacity_bytes = 0;  // size of the data directory's file system
  uint64_t free_bytes = 0;      // bytes the server may still allocate there
  uint32_t volume_count = 0;
  // Sums over the volumes: their sizes and the bytes in their COW files;
  // the volumes may still take provisioned - allocated of free_bytes.
  uint64_t provisioned_bytes = 0;
  uint64_t allocated_bytes = 0;
  uint64_t max_volume_size_bytes = 0;  // the largest volume it creates
  std::string nbd_address;  // "HOST:PORT" of its NBD export; empty: none
  uint32_t nbd_port = 0;
};

// A read-only base image.
struct ImageInfo {
  std::string name;
  uint64_t size_bytes = 0;
  uint32_t volume_count = 0;  // volumes layered over it
};

// A snapshot: an image of a volume at one moment (Client::CreateSnapshot).
struct SnapshotInfo {
  std::string name;           // also its image's name
  std::string source_volume;  // the volume it was taken of
  uint64_t size_bytes = 0;
  int64_t created_unix_nanos = 0;  // when it was taken
  uint32_t volume_count = 0;       // volumes layered over it
};

// A byte range of a volume and where its data lives: in the COW file
// (allocated: written, trimmed or zeroed since the volume was created) or
// still in the image (for a blank volume: zeros).
struct AllocationRange {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool allocated = false;
  // From Volume::GetExtents only: not allocated, and reads as zeros (a hole
  // of the image, past its end, or a blank volume's).
  bool zero = false;
};

// What grpc.health.v1 says about a service.
enum class HealthState {
  kUnknown,
  kServing,
  kNotServing,
};

// Returns "SERVING", "NOT_SERVING" or "UNKNOWN".
COWBLK_EXPORT const char* HealthStateName(HealthState state);

// Per-call settings of volume I/O.
struct IoOptions {
  // Writes, trims and write-zeroes: durable before they complete (FUA).
  // Ignored by reads and flushes.
  bool fua = false;
  // Time the whole call may take, retries and reconnects included. Zero:
  // the volume's default (VolumeOptions::deadline).
  std::chrono::milliseconds deadline{0};
};

// Counters of one open volume, for monitoring and tests. Each is
// cumulative since Open().
struct VolumeStats {
  uint64_t requests = 0;   // wire requests sent (chunks, retries included)
  uint64_t messages_sent = 0;      // gRPC messages those requests went in (batches)
  uint64_t messages_received = 0;  // gRPC messages the answers came in
  uint64_t retries = 0;    // wire requests sent again after a stream broke
  uint64_t streams = 0;    // Session streams started (1 per lane, plus reconnects)
  uint64_t nbd_requests = 0;     // of `requests`, those sent over the NBD export
  uint64_t nbd_connections = 0;  // NBD connections that completed the handshake
  // Server restarts that may have lost writes acknowledged since the last
  // flush (the volume's epoch changed); each fails the next flush answered
  // by the new server DATA_LOSS.
  uint64_t epoch_losses = 0;
  uint64_t in_flight = 0;  // wire requests sent and not yet answered (now)
  uint64_t queued = 0;     // wire requests waiting for a window slot (now)
};

}  // namespace cowblk

#endif  // COWBLK_CLIENT_INCLUDE_COWBLK_TYPES_H_
