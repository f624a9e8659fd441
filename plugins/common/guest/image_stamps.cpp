#include "image_stamps.hpp"

#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include <vmlat/process.hpp>

namespace vmlat::kvm {

namespace fs = std::filesystem;

namespace {

std::string two_part(long long seconds, long nanoseconds) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%lld.%09ld", seconds, nanoseconds);
  return buf;
}

std::string canonical_or_empty(const std::string& path) {
  if (path.empty()) return {};
  std::error_code ec;
  auto p = fs::canonical(path, ec);
  return ec ? path : p.string();
}

}  // namespace

std::string stat_stamp(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "absent";
  return std::to_string(static_cast<unsigned long long>(st.st_ino)) + " " +
         std::to_string(static_cast<long long>(st.st_size)) + " " +
         two_part(static_cast<long long>(st.st_mtim.tv_sec), st.st_mtim.tv_nsec) + " " +
         two_part(static_cast<long long>(st.st_ctim.tv_sec), st.st_ctim.tv_nsec);
}

fs::path stamps_file(const fs::path& cache, const std::string& flavour, bool qemu_ga) {
  return cache / (".stamps-" + flavour + (qemu_ga ? "-qga" : "") + ".json");
}

StampCheck check_stamps(const fs::path& stamps_file, const ImageRequest& request) {
  json doc;
  {
    std::ifstream in(stamps_file);
    if (!in) return {std::nullopt, "no " + stamps_file.string()};
    try {
      doc = json::parse(in);
    } catch (const std::exception& e) {
      return {std::nullopt, stamps_file.string() + " does not parse: " + e.what()};
    }
  }
  try {
    if (doc.value("format", 0) != 1) return {std::nullopt, stamps_file.string() + ": unknown format"};
    const json& asked = doc.at("request");
    auto differs = [&](const char* key, const std::string& ours) -> std::optional<StampCheck> {
      const std::string theirs = asked.value(key, std::string());
      if (theirs == ours) return std::nullopt;
      return StampCheck{std::nullopt, std::string("build-guest last resolved another request (") + key + " \"" +
                                          theirs + "\", now \"" + ours + "\")"};
    };
    if (auto d = differs("script", canonical_or_empty(request.script))) return *d;
    if (auto d = differs("flavour", request.flavour)) return *d;
    if (auto d = differs("kernel_package", "")) return *d;
    if (auto d = differs("agent", canonical_or_empty(request.agent))) return *d;
    if (auto d = differs("probe", canonical_or_empty(request.probe))) return *d;
    if (asked.value("qemu_ga", false) != request.qemu_ga)
      return {std::nullopt, std::string("build-guest last resolved an image ") + (request.qemu_ga ? "without" : "with") +
                                " qemu-ga"};
    const json& tools = asked.at("tools");
    if (!tools.is_object() || tools.empty()) return {std::nullopt, stamps_file.string() + ": no tools"};
    for (const auto& [name, then] : tools.items()) {
      const std::string now = canonical_or_empty(find_in_path(name).string());
      if (now != then.get<std::string>())
        return {std::nullopt, "PATH now finds " + name + " at \"" + now + "\", build-guest used \"" +
                                  then.get<std::string>() + "\""};
    }
    if (!asked.value("modules", json::array()).empty())
      return {std::nullopt, "build-guest last resolved a request with extra modules"};

    const json& files = doc.at("files");
    if (!files.is_array() || files.empty()) return {std::nullopt, stamps_file.string() + ": no stamped files"};
    for (const auto& f : files) {
      const std::string path = f.at("path").get<std::string>();
      const std::string then = f.at("stat").get<std::string>();
      const std::string now = stat_stamp(path);
      if (now != then) return {std::nullopt, path + " changed since build-guest checked it (" + then + " -> " + now + ")"};
    }

    const fs::path guest_json = doc.at("guest_json").get<std::string>();
    std::ifstream in(guest_json);
    if (!in) return {std::nullopt, "no " + guest_json.string()};
    json guest = json::parse(in);
    if (guest.value("hash", std::string()) != doc.value("hash", std::string()))
      return {std::nullopt, guest_json.string() + " is not the stamped image " + doc.value("hash", std::string())};
    for (const char* key : {"vmlinuz", "initramfs"})
      if (!fs::is_regular_file(guest.value(key, std::string())))
        return {std::nullopt, std::string("the stamped image has no ") + key};
    return {std::move(guest), "inputs unchanged (stat) since build-guest checked them at " +
                                  doc.value("checked_at", std::string("?"))};
  } catch (const std::exception& e) {
    return {std::nullopt, stamps_file.string() + ": " + e.what()};
  }
}

}  // namespace vmlat::kvm
