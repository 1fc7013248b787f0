// Synchronous access to one COW volume (COW file + backing file) with plain
// pread/pwrite: what the offline tool (cowblk-img), the tests and start-up
// validation use. The engine (server/engine/) has its own asynchronous path
// and uses this class only to open, validate and load the bitmap.
//
// Thread-safety: a CowFile is not thread-safe; one owner at a time.

#ifndef COWBLK_SERVER_COW_COW_FILE_H_
#define COWBLK_SERVER_COW_COW_FILE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/cow/bitmap.h"
#include "server/cow/cow_header.h"

namespace cowblk::cow {

struct OpenOptions {
  // Open the COW file read-write and take a write lock on it (a read lock
  // otherwise).
  bool writable = false;
  // Take the OFD locks that exclude UML (see file_lock.h). Turning this off
  // is for inspecting a file a running UML has open ("force share").
  bool lock = true;
  // Open the backing file and check its identity (exact size and low 32 bits
  // of mtime, as UML does). When false only the header and bitmap are read,
  // which is enough for info/map of a file whose backing is gone; Read() then
  // fails for unallocated sectors.
  bool open_backing = true;
  // Called with the header's backing path before the backing file is
  // opened (when open_backing); an error fails Open with it, and the file
  // is never opened. The store confines backing files to its images with it.
  std::function<absl::Status(const std::string& backing)> check_backing = nullptr;
};

struct CreateOptions {
  std::string backing_file;  // made absolute before it is stored
  uint32_t alignment = kDefaultAlignment;
};

class CowFile {
  // Only Open and Create construct a CowFile: the constructor is public for
  // std::make_unique, and callable only with this private key.
  struct Passkey {
    explicit Passkey() = default;
  };

 public:
  // Opens and validates `path`. Errors (each names the file and the problem):
  // NotFound (COW or backing file missing), InvalidArgument (anything wrong
  // with the header or geometry, file shorter than its bitmap),
  // FailedPrecondition (backing size or mtime mismatch, with both values;
  // a COW or backing file that is not a regular file or block device, never
  // waited on: a FIFO fails at once),
  // Unavailable (locked by another process), or the errno status of I/O.
  static absl::StatusOr<std::unique_ptr<CowFile>> Open(const std::string& path,
                                                       const OpenOptions& options);

  // Creates a new v3 COW file over `options.backing_file` (which must exist)
  // and returns it open for writing. The file is sparse: header, a zero
  // bitmap, and one byte at data_offset + size - 1, as uml_mkcow writes it.
  // Never overwrites: AlreadyExists if `path` exists. Nothing is left behind
  // on failure.
  static absl::StatusOr<std::unique_ptr<CowFile>> Create(
      const std::string& path, const CreateOptions& options);

  explicit CowFile(Passkey) : bitmap_(0) {}
  CowFile(const CowFile&) = delete;
  CowFile& operator=(const CowFile&) = delete;
  ~CowFile();  // closes both files, which releases the locks

  const std::string& path() const { return path_; }
  const Header& header() const { return header_; }
  const Geometry& geometry() const { return geometry_; }
  const Bitmap& bitmap() const { return bitmap_; }
  // For the engine, which owns the bitmap once it serves the file (memory
  // bits change before their block is written; see server/engine/volume.h).
  Bitmap& mutable_bitmap() { return bitmap_; }
  // Length of the COW file when it was opened.
  uint64_t file_size() const { return file_size_; }
  int cow_fd() const { return cow_fd_; }
  int backing_fd() const { return backing_fd_; }  // -1 without backing
  bool writable() const { return writable_; }

  // Reads the merged view (COW where the bit is set, backing where it is
  // clear) of [offset, offset + len). REQUIRES nothing of the arguments:
  // unaligned or out-of-range requests fail with InvalidArgument/OutOfRange.
  absl::Status Read(uint64_t offset, void* buf, uint64_t len) const;

  // Writes [offset, offset + len) to the COW data area, makes it durable
  // when new bits are needed (fdatasync), then sets the bits and writes the
  // bitmap blocks that hold them. Fails with FailedPrecondition when the file
  // was opened read-only.
  absl::Status Write(uint64_t offset, const void* buf, uint64_t len);

  // fdatasync of the COW file.
  absl::Status Flush();

 private:
  static absl::StatusOr<std::unique_ptr<CowFile>> OpenFd(
      const std::string& path, int fd, const OpenOptions& options);
  absl::Status CheckRange(uint64_t offset, uint64_t len) const;

  std::string path_;
  Header header_;
  Geometry geometry_;
  Bitmap bitmap_;
  uint64_t file_size_ = 0;
  int cow_fd_ = -1;
  int backing_fd_ = -1;
  bool writable_ = false;
};

// Compares a backing file with the identity a header stores, the way UML
// does. Returns one message per mismatch ("Size mismatch (H vs B) ...",
// "mtime mismatch (H vs B) ..."), empty when the file matches.
absl::StatusOr<std::vector<std::string>> CheckBackingIdentity(
    const Header& header, int backing_fd);

}  // namespace cowblk::cow

#endif  // COWBLK_SERVER_COW_COW_FILE_H_
