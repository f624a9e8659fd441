// build-guest's resolution stamps (<cache>/.stamps-<flavour>[-qga].json, written by
// plugins/common/guest/images/build-guest): what a resolution depended on, each file as
// "inode size mtime ctime" from stat(2). When every stamp still matches, the
// image build-guest resolved then is the image it would resolve now, and the
// backend boots it without running the script: an unchanged build-guest call
// costs ~0.9 s of CPU (apt-cache, sha256 of a 70 MB .deb), which under TCG is
// taken from the guest that boots meanwhile.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include <vmlat/json.hpp>

namespace vmlat::kvm {

// What the backend asks build-guest for; compared with the stamped request.
struct ImageRequest {
  std::string script;  // build-guest itself; compared by canonical path
  std::string flavour;
  std::string agent;  // as passed; compared by canonical path
  std::string probe;  // "" when no probe is passed
  bool qemu_ga = false;  // build-guest --qemu-ga (the QEMU guest agent inside)
};

// <cache>/.stamps-<flavour>.json, or -qga.json for an image with qemu-ga:
// each kind of image keeps its own, so asking for one never invalidates the
// other's.
std::filesystem::path stamps_file(const std::filesystem::path& cache, const std::string& flavour, bool qemu_ga);

// "inode size mtime ctime" as GNU `stat -L -c '%i %s %.9Y %.9Z'` prints it,
// or "absent" when stat(2) fails.
std::string stat_stamp(const std::filesystem::path& path);

struct StampCheck {
  std::optional<json> guest;  // guest.json of the stamped resolution, when it still holds
  std::string reason;         // why not (or, when it holds, when build-guest checked it)
};

// Reads `stamps_file` and re-checks the request, the tools build-guest found
// in PATH (looked up again in this process's PATH) and every stamp. Never throws: a missing,
// unreadable or foreign file is a "no" with its reason.
StampCheck check_stamps(const std::filesystem::path& stamps_file, const ImageRequest& request);

}  // namespace vmlat::kvm
