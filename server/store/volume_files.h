// Descriptors of a volume's files that belong to a transport: the COW file
// (read-write or read-only) and the backing file (read-only), reopened as
// new open file descriptions (VolumeHandle::OpenFiles), so no lock rides on
// them and they stay valid when the volume closes. Used to send
// engine::ReadExtents straight from the files and for inline writes
// (VolumeHandle::WriteAndSubmit).
//
// Thread-safety: immutable; any thread.

#ifndef COWBLK_SERVER_STORE_VOLUME_FILES_H_
#define COWBLK_SERVER_STORE_VOLUME_FILES_H_

#include "server/engine/request.h"

namespace cowblk::store {

class VolumeFiles {
 public:
  // Takes ownership of both descriptors.
  VolumeFiles(int cow, int backing) : cow_(cow), backing_(backing) {}
  ~VolumeFiles();
  VolumeFiles(const VolumeFiles&) = delete;
  VolumeFiles& operator=(const VolumeFiles&) = delete;

  int fd(engine::ReadExtent::Source source) const {
    return source == engine::ReadExtent::Source::kCow ? cow_ : backing_;
  }
  int cow_fd() const { return cow_; }

 private:
  const int cow_;
  const int backing_;
};

}  // namespace cowblk::store

#endif  // COWBLK_SERVER_STORE_VOLUME_FILES_H_
