// The libvirt C API as vmlat uses it: owned connections and domains, errors
// as exceptions carrying libvirt's own message, nothing printed on stderr
// by the library. Shared by the libvirt backend and vmlat-lint-domain.
#pragma once

#include <libvirt/libvirt.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace vmlat::libvirt {

// A libvirt call failed; `unreachable` when the daemon could not be
// reached at all (connection refused, socket missing, connection lost).
class LibvirtError : public std::runtime_error {
 public:
  LibvirtError(const std::string& what, int code, bool unreachable)
      : std::runtime_error(what), code_(code), unreachable_(unreachable) {}
  int code() const { return code_; }
  bool unreachable() const { return unreachable_; }

 private:
  int code_;
  bool unreachable_;
};

struct ConnClose {
  void operator()(virConnectPtr c) const noexcept { virConnectClose(c); }
};
struct DomainFree {
  void operator()(virDomainPtr d) const noexcept { virDomainFree(d); }
};
using Connection = std::unique_ptr<virConnect, ConnClose>;
using Domain = std::unique_ptr<virDomain, DomainFree>;

// Initializes the library once and keeps its errors off stderr.
void init_library();
// "`what`: <libvirt's last error>" as a LibvirtError (call right after a
// failed libvirt call, on the same thread).
[[noreturn]] void throw_last_error(const std::string& what);
// libvirt's last error message on this thread ("" if none).
std::string last_error_message();

// Opens `uri` (read-only: enough to read a domain's XML). Throws LibvirtError.
Connection open_connection(const std::string& uri, bool read_only);
// The domain called `name`; nullptr if there is none. Throws LibvirtError for
// other failures.
Domain lookup_domain(virConnectPtr conn, const std::string& name);
// virDomainGetXMLDesc(flags). Throws LibvirtError.
std::string domain_xml(virDomainPtr d, unsigned int flags = 0);
// 9000000 -> "9.0.0" (libvirt's encoding of versions).
std::string version_text(unsigned long long v);

}  // namespace vmlat::libvirt
