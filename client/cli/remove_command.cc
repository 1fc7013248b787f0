// `volume rm` and `image rm`: one command shape for both nouns.

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cli/context.h"

namespace cowblk::cli {

void AddRemoveCommand(CLI::App* parent, Context& ctx, const std::string& noun,
                      const std::string& help,
                      std::function<absl::Status(Client&, const std::string&)> remove) {
  auto names = std::make_shared<std::vector<std::string>>();
  CLI::App* rm = parent->add_subcommand("rm", help);
  rm->alias("delete");
  rm->add_option("NAME", *names, absl::StrCat(noun, " names"))->required();
  rm->callback([&ctx, names, noun, remove = std::move(remove)] {
    ctx.what = noun + " rm";
    ctx.run = [&ctx, names, noun, remove]() -> absl::Status {
      auto client = ctx.client();
      if (!client.ok()) return client.status();
      nlohmann::json deleted = nlohmann::json::array();
      std::string text;
      for (const std::string& name : *names) {
        ctx.what = absl::StrCat(noun, " rm ", name);
        if (absl::Status s = remove(**client, name); !s.ok()) return s;
        deleted.push_back(name);
        absl::StrAppend(&text, "deleted ", noun, " ", name, "\n");
      }
      ctx.Print({{"deleted", deleted}}, text);
      return absl::OkStatus();
    };
  });
}

}  // namespace cowblk::cli
