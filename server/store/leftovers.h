// What a crash can leave in the data directory, and its removal at start.
//
// Temporary files have names no user can give an image or a volume (names
// start with [a-z0-9], these with '.'), so a valid name is never taken for
// one ("x.tmp-1" is an image like any other):
//   images/.upload-NAME-HEX     an UploadImage cut short
//   images/.commit-NAME-HEX     a CommitVolume cut short
//   volumes/.clone-NAME-HEX     a CloneVolume cut short
//   volumes/.resize-NAME-HEX    a ResizeVolume cut short (the volume's own
//                               NAME.cow is whole: it is replaced last)
//   images/.blank/.tmp-SIZE-HEX a blank base being made
//   images/.blank/SIZE.img.tmp-HEX  the same, as earlier versions named it
//   DIR/.probe-HEX              the file-size probe (file_size_limit.h)
// A volume's epoch record volumes/NAME.state without its volumes/NAME.cow
// is an orphan (a DeleteVolume cut short by a crash, before deletes removed
// the record first): a later volume of that name must not inherit it.
//
// Thread-safety: call before the store serves; not thread-safe.

#ifndef COWBLK_SERVER_STORE_LEFTOVERS_H_
#define COWBLK_SERVER_STORE_LEFTOVERS_H_

#include <string>

namespace cowblk::store {

// Prefix of a clone's temporary COW file in volumes/.
inline constexpr char kCloneTempPrefix[] = ".clone-";
// Prefix of a resize's temporary COW file in volumes/.
inline constexpr char kResizeTempPrefix[] = ".resize-";

// Prefix of a blank base's temporary in images/.blank.
inline constexpr char kBlankTempPrefix[] = ".tmp-";

// Removes the temporaries above from `images_dir`, its .blank and
// `volumes_dir`, and the orphan epoch records from `volumes_dir`, logging
// each (`temporary_removed`, `orphan_state_removed`). Failures are logged
// and skipped: a leftover costs space, not correctness.
void RemoveLeftovers(const std::string& images_dir, const std::string& volumes_dir);

}  // namespace cowblk::store

#endif  // COWBLK_SERVER_STORE_LEFTOVERS_H_
