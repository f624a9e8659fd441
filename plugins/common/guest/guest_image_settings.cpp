#include "guest_image_settings.hpp"

namespace vmlat::kvm {

GuestImageSettings read_guest_image_settings(Settings& s) {
  GuestImageSettings c;
  c.image = s.choice("image", "nrt", {"nrt", "rt"});
  c.kernel = s.string("kernel", "");
  c.initrd = s.string("initrd", "");
  if (c.kernel.empty() != c.initrd.empty())
    s.error(c.kernel.empty() ? "initrd" : "kernel", "kernel and initrd go together: set both (your own image) or neither");
  if (!c.kernel.empty() && s.has("image"))
    s.error("image", "image (build-guest) and kernel/initrd (your own image) exclude each other");
  return c;
}

}  // namespace vmlat::kvm
