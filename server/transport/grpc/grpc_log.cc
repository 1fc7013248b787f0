#include "server/transport/grpc/grpc_log.h"

#include <grpc/support/log.h>

#include <string>

#include "common/log.h"

namespace cowblk::rpc {
namespace {

void ToCowblkLog(gpr_log_func_args* args) {
  const LogLevel level = args->severity == GPR_LOG_SEVERITY_ERROR  ? LogLevel::kError
                         : args->severity == GPR_LOG_SEVERITY_INFO ? LogLevel::kInfo
                                                                   : LogLevel::kDebug;
  Log(level, "grpc_log",
      {{"file", args->file ? args->file : ""},
       {"line", std::to_string(args->line)},
       {"message", args->message ? args->message : ""}});
}

}  // namespace

void RouteGrpcLogs() { gpr_set_log_function(ToCowblkLog); }

}  // namespace cowblk::rpc
