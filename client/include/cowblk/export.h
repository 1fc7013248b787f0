// COWBLK_EXPORT marks the public API of libcowblk. The shared library is
// built with hidden visibility, so it exports what carries this mark and
// nothing else: not the generated protobuf and gRPC code inside it, nor the
// private classes under client/src. The static library ignores the mark.

#ifndef COWBLK_CLIENT_INCLUDE_COWBLK_EXPORT_H_
#define COWBLK_CLIENT_INCLUDE_COWBLK_EXPORT_H_

#define COWBLK_EXPORT __attribute__((visibility("default")))

#endif  // COWBLK_CLIENT_INCLUDE_COWBLK_EXPORT_H_
