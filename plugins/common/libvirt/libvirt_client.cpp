#include "libvirt_client.hpp"

#include <libvirt/virterror.h>

#include <cstdlib>
#include <mutex>

namespace vmlat::libvirt {

namespace {
void silent(void*, virErrorPtr) {}

bool unreachable_code(int code) {
  return code == VIR_ERR_SYSTEM_ERROR || code == VIR_ERR_RPC || code == VIR_ERR_NO_CONNECT ||
         code == VIR_ERR_AUTH_FAILED || code == VIR_ERR_INVALID_CONN || code == VIR_ERR_AUTH_UNAVAILABLE;
}
}  // namespace

void init_library() {
  static std::once_flag once;
  std::call_once(once, [] {
    virInitialize();
    // libvirt prints every error on stderr by default; vmlat reports them itself.
    virSetErrorFunc(nullptr, silent);
  });
}

std::string last_error_message() {
  virErrorPtr e = virGetLastError();
  return e && e->message ? e->message : "";
}

void throw_last_error(const std::string& what) {
  virErrorPtr e = virGetLastError();
  const int code = e ? e->code : VIR_ERR_INTERNAL_ERROR;
  std::string message = e && e->message ? e->message : "unknown libvirt error";
  throw LibvirtError(what + ": " + message, code, unreachable_code(code));
}

Connection open_connection(const std::string& uri, bool read_only) {
  init_library();
  virConnectPtr c = read_only ? virConnectOpenReadOnly(uri.c_str()) : virConnectOpen(uri.c_str());
  if (!c) {
    virErrorPtr e = virGetLastError();
    const int code = e ? e->code : VIR_ERR_NO_CONNECT;
    // Whatever stops the connection from opening, libvirt was not reached.
    throw LibvirtError("cannot connect to libvirt at " + uri + ": " + (e && e->message ? e->message : "unknown error"), code,
                       true);
  }
  return Connection(c);
}

Domain lookup_domain(virConnectPtr conn, const std::string& name) {
  virDomainPtr d = virDomainLookupByName(conn, name.c_str());
  if (d) return Domain(d);
  virErrorPtr e = virGetLastError();
  if (e && e->code == VIR_ERR_NO_DOMAIN) return nullptr;
  throw_last_error("looking up domain '" + name + "'");
}

std::string domain_xml(virDomainPtr d, unsigned int flags) {
  char* xml = virDomainGetXMLDesc(d, flags);
  if (!xml) throw_last_error("reading the domain's XML");
  std::string s(xml);
  std::free(xml);
  return s;
}

std::string version_text(unsigned long long v) {
  return std::to_string(v / 1000000) + "." + std::to_string(v / 1000 % 1000) + "." + std::to_string(v % 1000);
}

}  // namespace vmlat::libvirt
