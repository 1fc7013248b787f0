#include "tests/support/pki.h"

#include "tests/support/command.h"

namespace cowblk::testing {

std::string Pki::Generate() {
  const CommandResult r = RunCommand(
      {"sh", COWBLK_TEST_SUPPORT_DIR "/make_pki.sh", dir_.path()}, Stderr::kInOutput);
  if (r.exit_code == 0) return "";
  return "make_pki.sh exited " + std::to_string(r.exit_code) + ":\n" + r.output;
}

}  // namespace cowblk::testing
