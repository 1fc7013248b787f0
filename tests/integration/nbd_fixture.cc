#include "tests/integration/nbd_fixture.h"

#include <arpa/inet.h>
#include <endian.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "tests/support/http_get.h"

namespace cowblk::testing {

void NbdTest::SetUp() {
  StartServer(ServerArgs());
  nbd_address_ = server_.ServingField("nbd");
  ASSERT_NE(nbd_address_, "");
  ASSERT_NE(nbd_address_, "off");
  ASSERT_TRUE(Create("disk0", kSize).ok());
}

void NbdTest::TearDown() {
  for (nbd_handle* h : handles_) nbd_close(h);
}

nbd_handle* NbdTest::Connect(const std::string& volume, std::string* error) {
  nbd_handle* h = nbd_create();
  handles_.push_back(h);
  if (nbd_connect_uri(h, Uri(volume).c_str()) != 0) {
    if (error != nullptr) *error = nbd_get_error();
    return nullptr;
  }
  return h;
}

int NbdTest::RawConnect(const std::string& volume) {
  const int fd = RawSocket();
  if (fd < 0) return -1;
  char greeting[18];
  if (!RecvAll(fd, greeting, sizeof greeting)) return close(fd), -1;
  uint32_t flags = htobe32(3);  // fixed newstyle, no zeroes
  std::string m(reinterpret_cast<char*>(&flags), 4);
  AppendOption(&m, 1, volume);
  if (!SendAll(fd, m)) return close(fd), -1;
  char export_info[10];  // size, transmission flags
  if (!RecvAll(fd, export_info, sizeof export_info)) return close(fd), -1;
  return fd;
}

int NbdTest::RawSocket() {
  const size_t colon = nbd_address_.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(nbd_address_.substr(colon + 1))));
  inet_pton(AF_INET, nbd_address_.substr(0, colon).c_str(), &addr.sin_addr);
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

void NbdTest::AppendOption(std::string* m, uint32_t option, const std::string& data) {
  uint64_t magic = htobe64(0x49484156454f5054);
  uint32_t opt = htobe32(option), len = htobe32(static_cast<uint32_t>(data.size()));
  m->append(reinterpret_cast<char*>(&magic), 8);
  m->append(reinterpret_cast<char*>(&opt), 4);
  m->append(reinterpret_cast<char*>(&len), 4);
  *m += data;
}

std::string NbdTest::Request(uint16_t type, uint16_t flags, uint64_t cookie, uint64_t offset,
                             uint32_t length, uint32_t magic) {
  std::string m(28, '\0');
  magic = htobe32(magic);
  flags = htobe16(flags);
  type = htobe16(type);
  cookie = htobe64(cookie);
  offset = htobe64(offset);
  length = htobe32(length);
  std::memcpy(&m[0], &magic, 4);
  std::memcpy(&m[4], &flags, 2);
  std::memcpy(&m[6], &type, 2);
  std::memcpy(&m[8], &cookie, 8);
  std::memcpy(&m[16], &offset, 8);
  std::memcpy(&m[24], &length, 4);
  return m;
}

int NbdTest::ReplyError(int fd, uint64_t cookie) {
  unsigned char r[16];
  if (!RecvAll(fd, r, sizeof r)) return -1;
  uint32_t magic, error;
  uint64_t got;
  std::memcpy(&magic, r, 4);
  std::memcpy(&error, r + 4, 4);
  std::memcpy(&got, r + 8, 8);
  EXPECT_EQ(be32toh(magic), 0x67446698u);
  EXPECT_EQ(be64toh(got), cookie);
  return static_cast<int>(be32toh(error));
}

bool NbdTest::SendAll(int fd, const std::string& m) {
  return send(fd, m.data(), m.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(m.size());
}

bool NbdTest::RecvAll(int fd, void* buf, size_t n) {
  return recv(fd, buf, n, MSG_WAITALL) == static_cast<ssize_t>(n);
}

bool NbdTest::ClosedByServer(int fd) {
  char c;
  return recv(fd, &c, 1, 0) <= 0;
}

double NbdTest::Metric(const std::string& name, const Scrape::Labels& labels) const {
  HttpResponse r = HttpGet(server_.MetricsAddress(), "/metrics");
  Scrape s;
  if (r.status != 200 || !s.Parse(r.body)) return -1;
  return s.Get(name, labels).value_or(-1);
}

std::string StatusField(const std::filesystem::path& status_file, const std::string& key) {
  std::ifstream status(status_file);
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(key, 0) == 0) return line.substr(key.size());
  }
  return "";
}

}  // namespace cowblk::testing
