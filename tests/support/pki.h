// A throwaway PKI for the TLS tests, made at test time with the openssl
// command by make_pki.sh (beside this file, which says what is in it: `ca`
// signs `server` and `client`, `other-ca` signs `intruder`).

#ifndef COWBLK_TESTS_SUPPORT_PKI_H_
#define COWBLK_TESTS_SUPPORT_PKI_H_

#include <string>

#include "tests/support/scratch.h"

namespace cowblk::testing {

class Pki {
 public:
  // Makes the certificates and keys in a directory of its own. Returns ""
  // on success, else what openssl said.
  std::string Generate();

  // The path of a file of the PKI ("ca.pem", "client.key"), or of one the
  // test puts beside them.
  std::string File(const std::string& name) const { return dir_.File(name); }
  // The bytes of File(name).
  std::string Read(const std::string& name) const { return ReadFileBytes(File(name)); }

 private:
  TempDir dir_;
};

}  // namespace cowblk::testing

#endif  // COWBLK_TESTS_SUPPORT_PKI_H_
