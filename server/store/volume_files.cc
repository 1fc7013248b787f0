#include "server/store/volume_files.h"

#include <unistd.h>

namespace cowblk::store {

VolumeFiles::~VolumeFiles() {
  close(cow_);
  close(backing_);
}

}  // namespace cowblk::store
