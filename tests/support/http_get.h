// A minimal HTTP client: the "real HTTP client" that scrapes cowblkd's
// /metrics and queries a Prometheus server's API. HTTP/1.0 over a plain
// socket, so nothing but the kernel stands between the test and the server.

#ifndef COWBLK_TESTS_SUPPORT_HTTP_GET_H_
#define COWBLK_TESTS_SUPPORT_HTTP_GET_H_

#include <string>

namespace cowblk::testing {

struct HttpResponse {
  int status = 0;  // 0: no response (see error)
  std::string body;
  std::string error;
};

// GET http://HOST:PORT/PATH with HTTP/1.0: the server closes the connection
// after the response, so the body is everything up to end of file.
// REQUIRES: `host_port` is a numeric IPv4 address and a port.
HttpResponse HttpGet(const std::string& host_port, const std::string& path);

// `s` percent-encoded for a URL's query (all but A-Z a-z 0-9 - _ . ~).
std::string UrlEncode(const std::string& s);

}  // namespace cowblk::testing

#endif  // COWBLK_TESTS_SUPPORT_HTTP_GET_H_
