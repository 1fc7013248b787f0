// NBD_CMD_BLOCK_STATUS for the base:allocation context, from what the
// volume knows: sectors written since the volume was made (its COW
// bitmap) are data; the others read from the backing file (the image, or
// a blank volume's sparse file of zeros), data where that file has data
// (lseek SEEK_DATA/SEEK_HOLE), else a hole that reads as zeros
// (NBD_STATE_HOLE | NBD_STATE_ZERO). The bitmap is read on the volume's
// engine thread (VolumeHandle::RunOnEngine), as GetAllocation reads it.
//
// Thread-safety: any thread but the volume's engine thread (it waits for
// that thread).

#ifndef COWBLK_SERVER_TRANSPORT_NBD_BLOCK_STATUS_H_
#define COWBLK_SERVER_TRANSPORT_NBD_BLOCK_STATUS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "server/store/volume_handle.h"
#include "server/transport/nbd/wire_parse.h"

namespace cowblk::nbd {

// The most extents one reply carries (8 KiB of payload): a fragmented range
// is answered in part, as the protocol allows, and the client asks on.
inline constexpr size_t kMaxExtents = 1024;

// The extents of [offset, offset + length), in order, from `offset` on:
// at least one, at most kMaxExtents (one with `req_one`), covering at most
// `length` bytes. REQUIRES: the range is sector-aligned, non-empty and
// within the volume.
std::vector<Extent> AllocationExtents(store::VolumeHandle& volume, uint64_t offset,
                                      uint32_t length, bool req_one);

}  // namespace cowblk::nbd

#endif  // COWBLK_SERVER_TRANSPORT_NBD_BLOCK_STATUS_H_
