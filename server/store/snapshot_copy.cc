#include "server/store/snapshot_copy.h"

#include <unistd.h>

#include <cstdlib>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/file_io.h"
#include "common/log.h"
#include "common/sector.h"
#include "server/cow/cow_file.h"
#include "server/cow/image_writer.h"

namespace cowblk::store {
namespace {

// Reads `chunk` as the snapshot saw it: allocated runs from the COW file's
// data area, the rest from the backing file (zeros past its end).
absl::Status ReadChunk(const VolumeHandle::SnapshotSource& source,
                       const engine::SnapshotChunk& chunk, char* buf) {
  for (const cow::SectorRun& run : chunk.runs) {
    char* dst = buf + (run.first - chunk.first) * kSectorSize;
    const uint64_t pos = run.first * kSectorSize;
    const uint64_t len = run.count * kSectorSize;
    absl::Status s =
        run.allocated
            ? PReadFull(source.files->fd(engine::ReadExtent::Source::kCow), dst, len,
                        source.data_offset + pos, "the volume's COW file")
            : PReadFull(source.files->fd(engine::ReadExtent::Source::kBacking), dst, len, pos,
                        "the volume's backing file");
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

// Where CopyChunks puts a chunk's bytes: `buf` holds the chunk as the
// snapshot saw it.
using ChunkSink = std::function<absl::Status(const engine::SnapshotChunk& chunk, const char* buf)>;

// Claims chunks and hands them to `sink`.
absl::Status CopyChunks(VolumeHandle& volume, const VolumeHandle::SnapshotSource& source,
                        const ChunkSink& sink, const std::function<bool()>& cancelled,
                        uint64_t* bytes_from_cow) {
  // Aligned for a COW file read with O_DIRECT (SnapshotSource::files).
  struct Free {
    void operator()(char* p) const { free(p); }
  };
  std::unique_ptr<char, Free> buf(
      static_cast<char*>(aligned_alloc(4096, engine::kSnapshotChunkSectors * kSectorSize)));
  if (buf == nullptr) return absl::ResourceExhaustedError("no memory for the commit's buffer");
  engine::SnapshotChunk chunk;
  uint64_t copied = 0;
  const uint64_t* done = nullptr;
  for (;;) {
    if (cancelled && cancelled()) {
      return absl::CancelledError(absl::StrCat("commit of volume ", volume.name(), " cancelled"));
    }
    auto more = volume.NextSnapshotChunk(done, &chunk);
    if (!more.ok()) return more.status();
    if (!*more) return absl::OkStatus();
    if (absl::Status s = ReadChunk(source, chunk, buf.get()); !s.ok()) return s;
    for (const cow::SectorRun& run : chunk.runs) {
      if (run.allocated) *bytes_from_cow += run.count * kSectorSize;
    }
    // Marked copied with the next claim: one engine round trip a chunk.
    copied = chunk.index;
    done = &copied;
    if (absl::Status s = sink(chunk, buf.get()); !s.ok()) return s;
  }
}

}  // namespace

absl::StatusOr<SnapshotCopyStats> CopySnapshot(VolumeHandle& volume,
                                               const std::string& image_path,
                                               const std::function<bool()>& cancelled) {
  auto source = volume.BeginSnapshot();
  if (!source.ok()) return source.status();
  Log(LogLevel::kInfo, "volume_snapshot_taken", {{"volume", volume.name()}});
  SnapshotCopyStats stats;
  auto image = cow::ImageWriter::Create(image_path, source->image_size);
  ChunkSink sink = [&image](const engine::SnapshotChunk& chunk, const char* buf) {
    return (*image)->Write(chunk.first * kSectorSize, buf, chunk.count * kSectorSize);
  };
  absl::Status s = image.ok() ? CopyChunks(volume, *source, sink, cancelled,
                                           &stats.image.bytes_from_cow)
                              : image.status();
  // The volume's writers go on before the image is made durable.
  stats.snapshot = volume.EndSnapshot();
  if (!s.ok()) return s;  // the writer removes its file
  if (absl::Status f = (*image)->Finish(); !f.ok()) return f;
  stats.image.image_size = source->image_size;
  stats.image.bytes_written = (*image)->bytes_written();
  return stats;
}

absl::StatusOr<SnapshotCopyStats> CloneSnapshot(VolumeHandle& volume, const std::string& cow_path,
                                                const std::string& backing,
                                                const std::function<bool()>& cancelled) {
  // Made before the moment: a backing that cannot be opened fails early.
  auto clone = cow::CowFile::Create(cow_path, cow::CreateOptions{backing});
  if (!clone.ok()) return clone.status();
  auto source = volume.BeginSnapshot();
  if (!source.ok()) {
    clone->reset();
    unlink(cow_path.c_str());
    return source.status();
  }
  Log(LogLevel::kInfo, "volume_snapshot_taken", {{"volume", volume.name()}});
  SnapshotCopyStats stats;
  absl::Status s = absl::OkStatus();
  if (source->image_size != (*clone)->header().size) {
    s = absl::FailedPreconditionError(
        absl::StrCat("the backing file of volume ", volume.name(), " changed size"));
  }
  // Only the allocated runs: the rest reads from the same backing.
  ChunkSink sink = [&clone](const engine::SnapshotChunk& chunk, const char* buf) {
    for (const cow::SectorRun& run : chunk.runs) {
      if (!run.allocated) continue;
      absl::Status w = (*clone)->Write(run.first * kSectorSize,
                                       buf + (run.first - chunk.first) * kSectorSize,
                                       run.count * kSectorSize);
      if (!w.ok()) return w;
    }
    return absl::OkStatus();
  };
  if (s.ok()) s = CopyChunks(volume, *source, sink, cancelled, &stats.image.bytes_from_cow);
  stats.snapshot = volume.EndSnapshot();
  if (s.ok()) s = (*clone)->Flush();
  clone->reset();  // closes it, releasing its lock
  if (!s.ok()) {
    unlink(cow_path.c_str());
    return s;
  }
  stats.image.image_size = source->image_size;
  stats.image.bytes_written = stats.image.bytes_from_cow;
  return stats;
}

}  // namespace cowblk::store
