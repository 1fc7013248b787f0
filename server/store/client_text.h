// What clients may learn of the server's file system: nothing. Error texts
// name files by their path relative to the data directory
// ("images/.blank/17592186044416.img"), never by the absolute path the
// store works with; the server's log keeps the full paths.
//
// The store registers its data directory once, in Store::Open, before any
// transport serves; the edges that hand a text to a client (the gRPC status
// conversion, Session answers, NBD replies, a volume's `error`) pass it
// through ForClients().
//
// Thread-safety: SetClientTextDataDir() before the threads that call
// ForClients() start (it is not synchronized with them); ForClients() from
// any thread.

#ifndef COWBLK_SERVER_STORE_CLIENT_TEXT_H_
#define COWBLK_SERVER_STORE_CLIENT_TEXT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace cowblk::store {

// Registers `root` (absolute) and, when it differs, its canonical form
// (symlinks resolved). A later call replaces both.
void SetClientTextDataDir(const std::string& root);

// `text` with "ROOT/" removed before every path beneath a registered root
// and ROOT itself written ".".
std::string ForClients(absl::string_view text);

// The same status with ForClients() of its message.
absl::Status ForClients(const absl::Status& status);

}  // namespace cowblk::store

#endif  // COWBLK_SERVER_STORE_CLIENT_TEXT_H_
