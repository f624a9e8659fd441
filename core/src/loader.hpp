// Finding, checking and loading plugin libraries (Boost.DLL).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace vmlat {

class Plugin;

struct PluginInfo {
  std::string name, kind, version, summary;
  std::vector<std::string> host_tags;  // a backend's (Descriptor::host_tags): placement
  int abi = 0;
  std::filesystem::path file;
  std::string refused;  // why it cannot be used; empty if usable
};

class PluginRegistry {
 public:
  // Scans `dirs` in order for vmlat-plugin-*.so; the first usable plugin of a
  // name wins.
  explicit PluginRegistry(std::vector<std::filesystem::path> dirs);
  ~PluginRegistry();

  // --plugin-dir entries, then $VMLAT_PLUGIN_PATH, the build tree, the install dir.
  static std::vector<std::filesystem::path> search_dirs(const std::vector<std::filesystem::path>& cli_dirs);

  const std::vector<PluginInfo>& all() const { return infos_; }
  const std::vector<std::filesystem::path>& dirs() const { return dirs_; }
  const PluginInfo* find(const std::string& name) const;
  // Why `name` is not usable: refused candidates with reasons, or where we looked.
  std::string why_missing(const std::string& name) const;
  std::unique_ptr<Plugin> create(const std::string& name) const;

  // Checks one file without loading it: world-writable, wrong owner, not a
  // regular file. Empty if acceptable.
  static std::string check_file(const std::filesystem::path& file);

 private:
  struct Loaded;
  std::vector<std::filesystem::path> dirs_;
  std::vector<PluginInfo> infos_;
  std::vector<std::unique_ptr<Loaded>> loaded_;
};

}  // namespace vmlat
