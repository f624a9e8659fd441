// The guest image settings the kvm backend and the Xen backends share: a
// build-guest flavour (`image`) or the user's own `kernel` + `initrd`.
#pragma once

#include <string>

#include <vmlat/settings.hpp>

namespace vmlat::kvm {

struct GuestImageSettings {
  std::string image = "nrt";  // build-guest flavour when the cell has no guest_kernel axis
  std::string kernel, initrd;  // the user's own image (both or neither)
};

// Reads `image` ("nrt" | "rt"), `kernel` and `initrd`; kernel and initrd go
// together and exclude image (errors located through `s`). Paths are
// checked by the caller: where they must exist differs (this machine, Dom0).
GuestImageSettings read_guest_image_settings(Settings& s);

// The kernel command line of vmlat's guest images on QEMU's serial console
// (kvm, libvirt's transient domains); the plan's `append` follows it.
inline constexpr const char* kSerialGuestAppend = "console=ttyS0 panic=-1 quiet";

}  // namespace vmlat::kvm
