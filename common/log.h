// Structured logs: one line per event on stderr, in logfmt
// (`ts=... level=info event=volume_opened volume=vm1 ...`), so both people
// and log shippers can read them. Thread-safe: each line is one write(2).

#ifndef COWBLK_COMMON_LOG_H_
#define COWBLK_COMMON_LOG_H_

#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace cowblk {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

using LogField = std::pair<absl::string_view, std::string>;

void Log(LogLevel level, absl::string_view event, std::initializer_list<LogField> fields = {});

// Lines below this level are dropped (default kInfo).
void SetLogLevel(LogLevel level);

}  // namespace cowblk

#endif  // COWBLK_COMMON_LOG_H_
