// What the NBD export tests (nbd_*_test.cc, the binary nbd_tests) share: a
// cowblkd with `--nbd-listen` and a volume "disk0" of kSize bytes; libnbd
// handles to it (a third-party client, for the protocol as clients speak
// it); and a raw socket with hand-made messages, for what well-behaved
// clients never send.

#ifndef COWBLK_TESTS_INTEGRATION_NBD_FIXTURE_H_
#define COWBLK_TESTS_INTEGRATION_NBD_FIXTURE_H_

#include <libnbd.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/metrics_scrape.h"
#include "tests/support/server_fixture.h"

namespace cowblk::testing {

// The size of "disk0".
constexpr uint64_t kSize = 8 << 20;

class NbdTest : public ServerFixture {
 protected:
  // Starts cowblkd with ServerArgs() and creates "disk0".
  void SetUp() override;
  // Closes every handle Connect() made.
  void TearDown() override;
  // The server's flags; a subclass adds its own.
  virtual std::vector<std::string> ServerArgs() const { return {"--nbd-listen", "127.0.0.1:0"}; }

  // nbd://ADDRESS/VOLUME.
  std::string Uri(const std::string& volume) const {
    return "nbd://" + nbd_address_ + "/" + volume;
  }
  // A libnbd handle connected to `volume` (null, with the error in `error`,
  // if the connection failed). Closed by TearDown.
  nbd_handle* Connect(const std::string& volume, std::string* error = nullptr);

  // A raw TCP connection to the export, handshake done with
  // NBD_OPT_EXPORT_NAME for `volume`. Returns the socket, -1 on failure.
  int RawConnect(const std::string& volume);
  // A raw TCP connection to the export, nothing sent or read yet; -1 on
  // failure.
  int RawSocket();
  // Appends an option request (the handshake's IHAVEOPT message).
  static void AppendOption(std::string* m, uint32_t option, const std::string& data);
  // One request header of the transmission phase.
  static std::string Request(uint16_t type, uint16_t flags, uint64_t cookie, uint64_t offset,
                             uint32_t length, uint32_t magic = 0x25609513);
  // Reads one simple reply; returns its error (-1: no reply, the server
  // closed the connection) and checks the cookie.
  static int ReplyError(int fd, uint64_t cookie);
  static bool SendAll(int fd, const std::string& m);
  static bool RecvAll(int fd, void* buf, size_t n);
  // True once the server closed `fd` (recv sees the end, not data).
  static bool ClosedByServer(int fd);
  // The value of a metric of the server, scraped now; -1 when the scrape
  // failed or the series is not there.
  double Metric(const std::string& name, const Scrape::Labels& labels = {}) const;

  std::string nbd_address_;  // the export's HOST:PORT
  std::vector<nbd_handle*> handles_;
};

// The value of `key` (e.g. "SigIgn:") in a /proc status file, or "".
std::string StatusField(const std::filesystem::path& status_file, const std::string& key);

}  // namespace cowblk::testing

#endif  // COWBLK_TESTS_INTEGRATION_NBD_FIXTURE_H_
