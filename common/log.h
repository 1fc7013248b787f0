// Structured logs: one line per event on stderr, so both people and log
// shippers can read them. Thread-safe: each line is one write(2).
//
// Every line carries the same keys first: ts (UTC, milliseconds), level
// (debug, info, warning, error) and event (a snake_case name), then the
// event's fields in the order the caller gave them. Three renderings of the
// same line (docs/cowblkd.md "Logs"):
//   logfmt (default)  ts=2026-12-07T18:54:26.123Z level=info event=serving address=...
//   json              {"ts":"2026-12-07T18:54:26.123Z","level":"info","event":"serving","address":"..."}
//   text              2026-12-07T18:54:26.123Z INFO  serving address=...
// In json every value is a string, and bytes that are not UTF-8 become
// U+FFFD, so that every line parses as one JSON object.

#ifndef COWBLK_COMMON_LOG_H_
#define COWBLK_COMMON_LOG_H_

#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace cowblk {

enum class LogLevel { kDebug, kInfo, kWarning, kError };
enum class LogFormat { kLogfmt, kJson, kText };

using LogField = std::pair<absl::string_view, std::string>;

void Log(LogLevel level, absl::string_view event, std::initializer_list<LogField> fields = {});

// Lines below this level are dropped (default kInfo).
void SetLogLevel(LogLevel level);

// How lines are written from now on (default kLogfmt). Call it before other
// threads log: lines already being written keep the format they started in.
void SetLogFormat(LogFormat format);

}  // namespace cowblk

#endif  // COWBLK_COMMON_LOG_H_
