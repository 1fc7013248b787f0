// The volumes a gateway serves, by export name (the volume's name), each
// opened once and shared by every NBD connection that chooses it: a flush
// on one connection covers the writes of all (multi-conn is safe).
//
// Thread-safety: the map is filled before the server starts and not
// changed while it runs; Volume's calls are thread-safe.

#ifndef COWBLK_CLIENT_GATEWAY_EXPORTS_H_
#define COWBLK_CLIENT_GATEWAY_EXPORTS_H_

#include <map>
#include <memory>
#include <string>

#include "cowblk/volume.h"

namespace cowblk::gateway {

using Exports = std::map<std::string, std::unique_ptr<Volume>>;

}  // namespace cowblk::gateway

#endif  // COWBLK_CLIENT_GATEWAY_EXPORTS_H_
