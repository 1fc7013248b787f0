// Names of volumes and images: [a-z0-9][a-z0-9._-]{0,62}. A name is also a
// file name under the data directory, so these rules are what keeps a
// caller's name from reaching outside it (no '/', no leading '.').

#ifndef COWBLK_SERVER_STORE_NAMES_H_
#define COWBLK_SERVER_STORE_NAMES_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace cowblk::store {

bool IsValidName(absl::string_view name);
// InvalidArgument naming `field` (and quoting the first 80 bytes of `name`)
// unless `name` is valid.
absl::Status ValidateName(absl::string_view field, absl::string_view name);

}  // namespace cowblk::store

#endif  // COWBLK_SERVER_STORE_NAMES_H_
