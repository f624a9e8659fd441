#include "loader.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/dll/shared_library.hpp>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "self_path.hpp"
#include "vmlat/errors.hpp"
#include "vmlat/plugin.hpp"

namespace vmlat {

struct PluginRegistry::Loaded {
  boost::dll::shared_library library;
  const Descriptor* descriptor = nullptr;
  Plugin* (*create)() = nullptr;
  std::string name;
};

std::vector<std::filesystem::path> PluginRegistry::search_dirs(const std::vector<std::filesystem::path>& cli_dirs) {
  std::vector<std::filesystem::path> dirs(cli_dirs.begin(), cli_dirs.end());
  if (const char* env = std::getenv("VMLAT_PLUGIN_PATH")) {
    std::string_view rest(env);
    while (!rest.empty()) {
      auto colon = rest.find(':');
      if (colon != 0) dirs.emplace_back(rest.substr(0, colon));
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  // An installed vmlat (plugins beside its executable) never loads plugins
  // from the build tree it was built in; a vmlat in the build tree does.
  std::optional<std::filesystem::path> installed;
#ifdef VMLAT_RELATIVE_PLUGIN_DIR
  installed = beside_executable(VMLAT_RELATIVE_PLUGIN_DIR);
#endif
  if (installed) dirs.push_back(*installed);
#ifdef VMLAT_BUILD_PLUGIN_DIR
  else dirs.emplace_back(VMLAT_BUILD_PLUGIN_DIR);
#endif
#ifdef VMLAT_INSTALL_PLUGIN_DIR
  if (!installed || *installed != std::filesystem::path(VMLAT_INSTALL_PLUGIN_DIR)) dirs.emplace_back(VMLAT_INSTALL_PLUGIN_DIR);
#endif
  return dirs;
}

std::string PluginRegistry::check_file(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return std::string("cannot stat: ") + std::strerror(errno);
  if (!S_ISREG(st.st_mode)) return "not a regular file";
  // A plugin runs with vmlat's privileges (often root, for SCHED_FIFO):
  // anyone who can replace it owns the machine.
  if (st.st_mode & S_IWOTH) return "refused: the file is world-writable (fix with: chmod o-w " + file.string() + ")";
  if (st.st_uid != 0 && st.st_uid != ::geteuid())
    return "refused: the file is owned by uid " + std::to_string(st.st_uid) + ", not by root or the current user (uid " +
           std::to_string(::geteuid()) + ")";
  return {};
}

PluginRegistry::PluginRegistry(std::vector<std::filesystem::path> dirs) : dirs_(std::move(dirs)) {
  for (const auto& dir : dirs_) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) continue;
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      auto name = entry.path().filename().string();
      if (name.rfind("vmlat-plugin-", 0) == 0 && entry.path().extension() == ".so") files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      PluginInfo info;
      info.file = file;
      info.name = file.stem().string().substr(std::strlen("vmlat-plugin-"));
      info.refused = check_file(file);
      if (!info.refused.empty()) {
        infos_.push_back(info);
        continue;
      }
      auto loaded = std::make_unique<Loaded>();
      try {
        loaded->library.load(boost::dll::fs::path(file), boost::dll::load_mode::rtld_lazy | boost::dll::load_mode::rtld_local);
        if (!loaded->library.has("vmlat_describe") || !loaded->library.has("vmlat_create")) {
          info.refused = "refused: not a vmlat plugin (no vmlat_describe/vmlat_create export; use VMLAT_PLUGIN)";
          infos_.push_back(info);
          continue;
        }
        auto describe = loaded->library.get_alias<const Descriptor*()>("vmlat_describe");
        loaded->descriptor = describe();
        loaded->create = loaded->library.get_alias<Plugin*()>("vmlat_create");
      } catch (const std::exception& e) {
        info.refused = std::string("refused: cannot load: ") + e.what();
        infos_.push_back(info);
        continue;
      }
      const Descriptor* d = loaded->descriptor;
      info.abi = d->abi_version;
      if (d->abi_version != abi_version) {
        info.refused = "refused: built for plugin ABI " + std::to_string(d->abi_version) + ", this vmlat has ABI " +
                       std::to_string(abi_version) + " (rebuild the plugin against this vmlat's headers)";
        infos_.push_back(info);
        continue;  // never touch the rest of a foreign-ABI descriptor
      }
      info.name = d->name ? d->name : info.name;
      info.kind = d->kind ? d->kind : "";
      info.version = d->version ? d->version : "";
      info.summary = d->summary ? d->summary : "";
      for (std::string_view tags = d->host_tags ? d->host_tags : ""; !tags.empty();) {
        const auto comma = tags.find(',');
        if (comma != 0) info.host_tags.emplace_back(tags.substr(0, comma));
        if (comma == std::string_view::npos) break;
        tags.remove_prefix(comma + 1);
      }
      if (info.kind != "backend" && info.kind != "workload" && info.kind != "probe") {
        info.refused = "refused: unknown plugin kind '" + info.kind + "'";
        infos_.push_back(info);
        continue;
      }
      bool shadowed = false;
      for (const auto& other : infos_)
        if (other.refused.empty() && other.name == info.name) shadowed = true;
      if (shadowed) info.refused = "shadowed by an earlier plugin of the same name";
      loaded->name = info.name;
      infos_.push_back(info);
      if (!shadowed) loaded_.push_back(std::move(loaded));
    }
  }
}

PluginRegistry::~PluginRegistry() = default;

const PluginInfo* PluginRegistry::find(const std::string& name) const {
  for (const auto& info : infos_)
    if (info.refused.empty() && info.name == name) return &info;
  return nullptr;
}

std::string PluginRegistry::why_missing(const std::string& name) const {
  std::string refused;
  for (const auto& info : infos_)
    if (info.name == name && !info.refused.empty()) refused += "\n  " + info.file.string() + ": " + info.refused;
  if (!refused.empty()) return "plugin '" + name + "' was found but cannot be used:" + refused;
  std::vector<std::string> names;
  for (const auto& info : infos_)
    if (info.refused.empty()) names.push_back(info.name);
  std::string message = "plugin '" + name + "' not found";
  auto close = did_you_mean(name, names);
  if (!close.empty()) message += "; did you mean '" + close + "'?";
  message += " (searched:";
  for (const auto& d : dirs_) message += " " + d.string();
  message += "; add a directory with --plugin-dir or VMLAT_PLUGIN_PATH)";
  return message;
}

std::unique_ptr<Plugin> PluginRegistry::create(const std::string& name) const {
  for (const auto& l : loaded_)
    if (l->name == name) {
      Plugin* p = l->create();
      if (!p) throw InfraError("plugin '" + name + "' returned no instance");
      return std::unique_ptr<Plugin>(p);
    }
  throw PlanError(why_missing(name));
}

}  // namespace vmlat
