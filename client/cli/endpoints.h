// The ends of a copy: local files (or stdout) and volumes.

#ifndef COWBLK_CLIENT_CLI_ENDPOINTS_H_
#define COWBLK_CLIENT_CLI_ENDPOINTS_H_

#include <deque>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "client/cli/copy.h"
#include "cowblk/client.h"
#include "cowblk/volume.h"

namespace cowblk::cli {

// A regular file or a block device, read with pread; holes from SEEK_HOLE.
class FileSource : public Source {
 public:
  static absl::StatusOr<std::unique_ptr<FileSource>> Open(const std::string& path);
  ~FileSource() override;
  uint64_t size() const override { return size_; }
  absl::StatusOr<std::vector<Extent>> Map() override;
  absl::Status Read(uint64_t offset, char* buf, size_t length) override;

 private:
  FileSource(std::string path, int fd, uint64_t size, bool regular)
      : path_(std::move(path)), fd_(fd), size_(size), regular_(regular) {}
  const std::string path_;
  const int fd_;
  const uint64_t size_;
  const bool regular_;
};

// A file created or truncated to the copy's size (so zeros are holes), an
// existing block device (zeros are written), or stdout ("-": in order).
class FileSink : public Sink {
 public:
  static absl::StatusOr<std::unique_ptr<FileSink>> Open(const std::string& path);
  ~FileSink() override;
  absl::Status Begin(uint64_t size) override;
  absl::Status Write(uint64_t offset, const char* buf, size_t length) override;
  absl::Status Zero(uint64_t offset, uint64_t length) override;
  absl::Status Finish() override;

 private:
  FileSink(std::string path, int fd, bool regular, bool stream)
      : path_(std::move(path)), fd_(fd), regular_(regular), stream_(stream) {}
  absl::Status WriteAll(uint64_t offset, const char* buf, size_t length);

  const std::string path_;
  const int fd_;
  const bool regular_;  // truncate; zeros are holes
  const bool stream_;   // stdout: sequential writes only
};

// A volume read in pieces (each split into parallel chunks by the library).
// Unallocated ranges of a blank volume are zeros; of a volume over an image
// they are the image's data.
class VolumeSource : public Source {
 public:
  // `size`: bytes to copy (the volume's size, or less: an image's exact size).
  VolumeSource(Volume* volume, uint64_t size) : volume_(volume), size_(size) {}
  uint64_t size() const override { return size_; }
  absl::StatusOr<std::vector<Extent>> Map() override;
  absl::Status Read(uint64_t offset, char* buf, size_t length) override;

 private:
  Volume* const volume_;
  const uint64_t size_;
};

// A volume written with a few asynchronous writes in flight. Zero() is free
// on ranges of a blank volume that were unallocated when the copy began;
// elsewhere it is a WriteZeroes. Finish() flushes.
class VolumeSink : public Sink {
 public:
  explicit VolumeSink(Volume* volume) : volume_(volume) {}
  ~VolumeSink() override;
  uint64_t alignment() const override { return volume_->sector_size(); }
  absl::Status Begin(uint64_t size) override;
  absl::Status Write(uint64_t offset, const char* buf, size_t length) override;
  absl::Status Zero(uint64_t offset, uint64_t length) override;
  absl::Status Finish() override;

 private:
  struct Pending {
    std::string data;
    std::future<absl::Status> done;
  };
  // Waits for all but `keep` pending writes; the first failure.
  absl::Status Drain(size_t keep);
  bool Unallocated(uint64_t offset, uint64_t length) const;

  Volume* const volume_;
  std::vector<AllocationRange> allocation_;  // blank volumes only
  std::deque<Pending> pending_;
};

// A new image, uploaded in order: data as data, zeros as zero ranges (no
// bytes sent, holes in the server's image file). Writes and zeros must come
// in order, as Copy makes them. image() is the published image after
// Finish.
class ImageSink : public Sink {
 public:
  ImageSink(Client* client, std::string name) : client_(client), name_(std::move(name)) {}
  absl::Status Begin(uint64_t size) override;
  absl::Status Write(uint64_t offset, const char* buf, size_t length) override;
  absl::Status Zero(uint64_t offset, uint64_t length) override;
  absl::Status Finish() override;
  const ImageInfo& image() const { return image_; }

 private:
  absl::Status InOrder(uint64_t offset) const;

  Client* const client_;
  const std::string name_;
  std::unique_ptr<ImageUpload> upload_;
  ImageInfo image_;
};

}  // namespace cowblk::cli

#endif  // COWBLK_CLIENT_CLI_ENDPOINTS_H_
