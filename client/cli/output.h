// What the cowblk commands print: sizes, tables, JSON, error lines, and the
// exit code each failure maps to (docs/cli.md, "Exit status").

#ifndef COWBLK_CLIENT_CLI_OUTPUT_H_
#define COWBLK_CLIENT_CLI_OUTPUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cowblk/types.h"
#include "nlohmann/json.hpp"

namespace cowblk::cli {

// Exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;       // any other failure
inline constexpr int kExitUsage = 2;        // bad flags or arguments
inline constexpr int kExitUnavailable = 3;  // no server, or it ran out of time
inline constexpr int kExitNotFound = 4;     // no such volume or image
inline constexpr int kExitExists = 5;       // the volume or image exists already
inline constexpr int kExitDenied = 6;       // no valid token, or not allowed
// stdout's reader went away (`cowblk read ... | head`): main() ends quietly,
// killed by SIGPIPE as coreutils are (a shell sees 141 = 128 + SIGPIPE).
inline constexpr int kExitClosedPipe = 141;

// The status of a write to stdout that met EPIPE; ExitCode() maps it to
// kExitClosedPipe, and main() prints no error line for it.
absl::Status StdoutClosed();
bool IsStdoutClosed(const absl::Status& status);

// The exit code of a failed status.
int ExitCode(const absl::Status& status);

// "cowblk: CONTEXT: MESSAGE (CODE)" on one line (newlines in the message
// become spaces).
std::string ErrorLine(const std::string& context, const absl::Status& status);

// "12345", "64M", "64MiB", "1g", "4k": bytes, with binary suffixes K, M, G,
// T, P (optionally followed by "iB" or "B"), case-insensitive.
absl::StatusOr<uint64_t> ParseSize(const std::string& text, const std::string& what);
// "64 MiB", "1.5 GiB", "512 B".
std::string FormatSize(uint64_t bytes);

// Left-aligned columns separated by two spaces; the first row is the header.
std::string Table(const std::vector<std::vector<std::string>>& rows);

nlohmann::json ToJson(const VolumeInfo& v);
nlohmann::json ToJson(const ImageInfo& i);

}  // namespace cowblk::cli

#endif  // COWBLK_CLIENT_CLI_OUTPUT_H_
