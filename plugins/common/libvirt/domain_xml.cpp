#include "domain_xml.hpp"

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <algorithm>
#include <memory>
#include <set>

#include <vmlat/cpus.hpp>

namespace vmlat::libvirt {

namespace {

constexpr std::size_t kMaxXmlBytes = 4u << 20;

struct DocFree {
  void operator()(xmlDoc* d) const { xmlFreeDoc(d); }
};

bool is(const xmlNode* n, const char* name) {
  return n && n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, reinterpret_cast<const xmlChar*>(name)) == 0;
}

std::vector<const xmlNode*> children(const xmlNode* parent, const char* name) {
  std::vector<const xmlNode*> out;
  if (!parent) return out;
  for (const xmlNode* c = parent->children; c; c = c->next)
    if (is(c, name)) out.push_back(c);
  return out;
}

const xmlNode* child(const xmlNode* parent, const char* name) {
  auto all = children(parent, name);
  return all.empty() ? nullptr : all.front();
}

std::optional<std::string> attr(const xmlNode* n, const char* name) {
  if (!n) return std::nullopt;
  xmlChar* v = xmlGetProp(n, reinterpret_cast<const xmlChar*>(name));
  if (!v) return std::nullopt;
  std::string s(reinterpret_cast<const char*>(v));
  xmlFree(v);
  return s;
}

std::string text(const xmlNode* n) {
  if (!n) return {};
  xmlChar* v = xmlNodeGetContent(n);
  if (!v) return {};
  std::string s(reinterpret_cast<const char*>(v));
  xmlFree(v);
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

int to_int(const std::string& s, const std::string& where) {
  std::size_t used = 0;
  long v = 0;
  try {
    v = std::stol(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != s.size() || v < 0 || v > 65535)
    throw DomainXmlError(where + ": '" + s.substr(0, 40) + "' is not a number from 0 to 65535");
  return static_cast<int>(v);
}

}  // namespace

std::vector<int> parse_cpuset(std::string_view text, const std::string& where) {
  std::set<int> in, out;
  std::size_t start = 0;
  bool any = false;
  while (start <= text.size()) {
    auto comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view item = text.substr(start, comma - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    const bool exclude = !item.empty() && item.front() == '^';
    if (exclude) item.remove_prefix(1);
    try {
      for (int c : parse_cpu_list(item)) (exclude ? out : in).insert(c);
    } catch (const std::exception& e) {
      throw DomainXmlError(where + ": cpuset '" + std::string(text.substr(0, 80)) + "' is not a CPU list (" + e.what() + ")");
    }
    any = true;
    start = comma + 1;
  }
  std::vector<int> cpus;
  for (int c : in)
    if (!out.count(c)) cpus.push_back(c);
  if (!any || cpus.empty()) throw DomainXmlError(where + ": cpuset '" + std::string(text.substr(0, 80)) + "' names no CPU");
  return cpus;
}

const Channel* DomainXml::channel(std::string_view wanted) const {
  for (const auto& c : channels)
    if (c.target_name == wanted) return &c;
  return nullptr;
}

DomainXml parse_domain_xml(std::string_view xml) {
  if (xml.size() > kMaxXmlBytes) throw DomainXmlError("domain XML of " + std::to_string(xml.size()) + " bytes: at most 4 MiB");
  xmlResetLastError();
  // NONET: no fetching; entities are not substituted and no DTD is loaded
  // (libxml2's defaults without NOENT/DTDLOAD).
  std::unique_ptr<xmlDoc, DocFree> doc(xmlReadMemory(xml.data(), static_cast<int>(xml.size()), "domain.xml", nullptr,
                                                     XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING));
  if (!doc) {
    const xmlError* e = xmlGetLastError();
    std::string why = e && e->message ? e->message : "not XML";
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    throw DomainXmlError("domain XML line " + std::to_string(e ? e->line : 0) + ": " + why);
  }
  const xmlNode* root = xmlDocGetRootElement(doc.get());
  if (!is(root, "domain")) throw DomainXmlError("not a libvirt domain XML: the root element is not <domain>");
  DomainXml d;
  d.type = attr(root, "type").value_or("");
  d.name = text(child(root, "name"));
  d.uuid = text(child(root, "uuid"));
  if (const auto* v = child(root, "vcpu")) d.vcpus = to_int(text(v), "/domain/vcpu");
  if (d.vcpus < 1) throw DomainXmlError("/domain/vcpu: a domain has at least one vCPU");

  if (const auto* tune = child(root, "cputune")) {
    for (const auto* p : children(tune, "vcpupin")) {
      const std::string where = "/domain/cputune/vcpupin";
      const int vcpu = to_int(attr(p, "vcpu").value_or(""), where + "/@vcpu");
      const std::string set = attr(p, "cpuset").value_or("");
      d.vcpupin[vcpu] = parse_cpuset(set, where + "[@vcpu='" + std::to_string(vcpu) + "']");
      d.vcpupin_text[vcpu] = set;
    }
    if (const auto* e = child(tune, "emulatorpin")) {
      d.emulatorpin_text = attr(e, "cpuset").value_or("");
      d.emulatorpin = parse_cpuset(d.emulatorpin_text, "/domain/cputune/emulatorpin");
    }
    for (const auto* s : children(tune, "vcpusched")) {
      VcpuSched v;
      v.vcpus_text = attr(s, "vcpus").value_or("");
      if (!v.vcpus_text.empty()) v.vcpus = parse_cpuset(v.vcpus_text, "/domain/cputune/vcpusched/@vcpus");
      else
        for (int i = 0; i < d.vcpus; ++i) v.vcpus.push_back(i);  // libvirt: no vcpus attribute means all
      v.scheduler = attr(s, "scheduler").value_or("");
      if (auto p = attr(s, "priority")) v.priority = to_int(*p, "/domain/cputune/vcpusched/@priority");
      d.vcpusched.push_back(std::move(v));
    }
  }
  if (const auto* mb = child(root, "memoryBacking")) {
    d.has_memory_backing = true;
    d.hugepages = child(mb, "hugepages") != nullptr;
    d.locked = child(mb, "locked") != nullptr;
    d.nosharepages = child(mb, "nosharepages") != nullptr;
  }
  if (const auto* f = child(root, "features")) {
    d.has_features = true;
    if (const auto* pmu = child(f, "pmu")) d.pmu_state = attr(pmu, "state").value_or("on");
  }
  if (const auto* cpu = child(root, "cpu")) {
    // libvirt's default mode is custom.
    d.cpu_mode = attr(cpu, "mode").value_or("custom");
    for (const auto* f : children(cpu, "feature"))
      if (auto n = attr(f, "name")) d.cpu_features[*n] = attr(f, "policy").value_or("require");
  }
  if (const auto* os = child(root, "os")) {
    d.kernel = text(child(os, "kernel"));
    d.initrd = text(child(os, "initrd"));
    d.cmdline = text(child(os, "cmdline"));
  }
  if (const auto* dev = child(root, "devices")) {
    if (const auto* b = child(dev, "memballoon")) d.memballoon_model = attr(b, "model").value_or("");
    for (const auto* c : children(dev, "channel")) {
      Channel ch;
      ch.type = attr(c, "type").value_or("");
      const auto* src = child(c, "source");
      ch.source_mode = attr(src, "mode").value_or("");
      ch.source_path = attr(src, "path").value_or("");
      const auto* tgt = child(c, "target");
      ch.target_type = attr(tgt, "type").value_or("");
      ch.target_name = attr(tgt, "name").value_or("");
      d.channels.push_back(std::move(ch));
    }
  }
  return d;
}

}  // namespace vmlat::libvirt
