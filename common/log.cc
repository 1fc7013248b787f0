#include "common/log.h"

#include <unistd.h>

#include <atomic>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace cowblk {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<int> g_format{static_cast<int>(LogFormat::kLogfmt)};

// Each level's name (logfmt, json) and the text format's column (one
// width, as consoles align it), indexed by LogLevel.
struct LevelNames {
  const char* name;
  const char* column;
};
constexpr LevelNames kLevels[] = {
    {"debug", "DEBUG"}, {"info", "INFO "}, {"warning", "WARN "}, {"error", "ERROR"}};

const LevelNames& Names(LogLevel level) { return kLevels[static_cast<int>(level)]; }

// Quotes values that contain spaces, quotes or '=' (logfmt).
std::string LogfmtValue(absl::string_view v) {
  bool quote = v.empty();
  for (char c : v) quote |= c == ' ' || c == '"' || c == '=' || c == '\n';
  if (!quote) return std::string(v);
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  return out + "\"";
}

// Length of the well-formed UTF-8 sequence at the start of `s`, 0 if none
// (overlong forms, surrogates and code points above U+10FFFF are not).
size_t Utf8Length(absl::string_view s) {
  const auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const auto cont = [&](size_t i) { return i < s.size() && (b(i) & 0xC0) == 0x80; };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;
    if (c == 0xED && b(1) >= 0xA0) return 0;
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;
    if (c == 0xF4 && b(1) >= 0x90) return 0;
    return 4;
  }
  return 0;
}

void AppendJsonString(std::string* out, absl::string_view v) {
  *out += '"';
  while (!v.empty()) {
    const char c = v[0];
    const size_t n = Utf8Length(v);
    if (n == 0) {
      *out += "\xEF\xBF\xBD";  // U+FFFD
      v.remove_prefix(1);
      continue;
    }
    if (c == '"' || c == '\\') {
      *out += '\\';
      *out += c;
    } else if (c == '\n') {
      *out += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
      absl::StrAppendFormat(out, "\\u%04x", static_cast<unsigned char>(c));
    } else {
      out->append(v.data(), n);
    }
    v.remove_prefix(n);
  }
  *out += '"';
}

// One line as Log() writes it at `time`, newline included.
std::string FormatLogLine(LogFormat format, absl::Time time, LogLevel level,
                          absl::string_view event, std::initializer_list<LogField> fields) {
  const std::string ts = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone());
  std::string line;
  switch (format) {
    case LogFormat::kJson:
      line = absl::StrCat("{\"ts\":\"", ts, "\",\"level\":\"", Names(level).name,
                          "\",\"event\":");
      AppendJsonString(&line, event);
      for (const auto& [k, v] : fields) {
        line += ',';
        AppendJsonString(&line, k);
        line += ':';
        AppendJsonString(&line, v);
      }
      line += '}';
      break;
    case LogFormat::kText:
      line = absl::StrCat(ts, " ", Names(level).column, " ", event);
      for (const auto& [k, v] : fields) absl::StrAppend(&line, " ", k, "=", LogfmtValue(v));
      break;
    case LogFormat::kLogfmt:
      line = absl::StrCat("ts=", ts, " level=", Names(level).name, " event=", event);
      for (const auto& [k, v] : fields) absl::StrAppend(&line, " ", k, "=", LogfmtValue(v));
      break;
  }
  return line + '\n';
}

}  // namespace

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }

void SetLogFormat(LogFormat format) { g_format.store(static_cast<int>(format)); }

void Log(LogLevel level, absl::string_view event, std::initializer_list<LogField> fields) {
  if (static_cast<int>(level) < g_level.load(std::memory_order_relaxed)) return;
  const std::string line =
      FormatLogLine(static_cast<LogFormat>(g_format.load(std::memory_order_relaxed)),
                    absl::Now(), level, event, fields);
  ssize_t rc = write(STDERR_FILENO, line.data(), line.size());
  (void)rc;
}

}  // namespace cowblk
