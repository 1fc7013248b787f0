// The version every binary reports with --version (and cowblkd in
// cowblk_build_info): the project's version (CMakeLists.txt) and the git
// commit it was built from (`git describe --always --dirty --abbrev=12`;
// -DCOWBLK_COMMIT= where there is no .git, as in the container build;
// otherwise "unknown"). Both live in
// version.cc, generated in the build directory by version.cmake at every
// build and rewritten only when they change: a new commit recompiles that
// one file and relinks the binaries, nothing else.

#ifndef COWBLK_COMMON_VERSION_H_
#define COWBLK_COMMON_VERSION_H_

#include <string>

#include "absl/strings/string_view.h"

namespace cowblk {

// "0.1.0".
const char* Version();
// "25b2fa1c0d3e", "25b2fa1c0d3e-dirty", "v0.1.0-3-g25b2fa1c0d3e", "unknown".
const char* GitCommit();
// "PROGRAM 0.1.0 (commit 25b2fa1c0d3e)": what --version prints.
std::string VersionLine(absl::string_view program);

}  // namespace cowblk

#endif  // COWBLK_COMMON_VERSION_H_
