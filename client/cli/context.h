// The state every cowblk command shares: the global flags, the connection
// made from them, and how results are printed. Each command registers
// itself on the CLI11 app and, when chosen, sets `run`; main() runs it and
// turns its status into an error line and an exit code.

#ifndef COWBLK_CLIENT_CLI_CONTEXT_H_
#define COWBLK_CLIENT_CLI_CONTEXT_H_

#include <atomic>
#include <functional>
#include <optional>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/cli/connection.h"
#include "cowblk/client.h"
#include "nlohmann/json.hpp"

namespace cowblk::cli {

struct GlobalFlags : ConnectionFlags {
  GlobalFlags() { server = "127.0.0.1:7800"; }
  bool json = false;
  bool quiet = false;
};

// Set by SIGINT/SIGTERM once CatchInterrupts() ran: commands that must
// clean up (a copy's temporary volume) stop at the next piece instead of
// dying.
extern std::atomic<bool> g_interrupted;
void CatchInterrupts();

struct Context {
  GlobalFlags flags;
  // The chosen command: returns its status. `what` names it in errors.
  std::function<absl::Status()> run;
  std::string what;

  // The client for the global flags (made on first use).
  absl::StatusOr<Client*> client();
  // Prints `j` (with --json) or `text` (without) to stdout.
  void Print(const nlohmann::json& j, const std::string& text) const;
  // Whether a progress bar may be drawn: stderr is a terminal, no --json,
  // no --quiet.
  bool progress() const;

 private:
  std::optional<Client> client_;
};

// Each adds its commands to `app`.
void AddVolumeCommands(CLI::App& app, Context& ctx);
void AddImageCommands(CLI::App& app, Context& ctx);
void AddSnapshotCommands(CLI::App& app, Context& ctx);
void AddCopyCommand(CLI::App& app, Context& ctx);
void AddRangeCommands(CLI::App& app, Context& ctx);
void AddHealthCommand(CLI::App& app, Context& ctx);
// `nbd` (the gateway), and `map`, `unmap`, `showmapped`.
void AddNbdCommand(CLI::App& app, Context& ctx);
void AddMapCommands(CLI::App& app, Context& ctx);
// `top` (per-volume I/O rates from cowblkd's metrics endpoint).
void AddTopCommand(CLI::App& app, Context& ctx);
// `server info`.
void AddServerCommands(CLI::App& app, Context& ctx);
// `volume map` (REQUIRES: AddVolumeCommands ran) and `du`.
void AddAllocationCommands(CLI::App& app, Context& ctx);

// `NOUN rm NAME...` (alias `delete`) under `parent`: removes each name with
// `remove`, in order, stopping at the first failure; prints
// {"deleted": [NAMES...]} or one "deleted NOUN NAME" line each.
void AddRemoveCommand(CLI::App* parent, Context& ctx, const std::string& noun,
                      const std::string& help,
                      std::function<absl::Status(Client&, const std::string&)> remove);

}  // namespace cowblk::cli

#endif  // COWBLK_CLIENT_CLI_CONTEXT_H_
