// Plan parsing and validation, and the TOML-backed Settings. The only
// translation unit that includes TOML++ (it is heavy to compile).
#include "plan.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <functional>
#include <set>
#include <sstream>
#include <toml++/toml.h>
#include <unordered_map>
#include <unordered_set>

#include "cell/plugins.hpp"
#include "cell_support.hpp"
#include "loader.hpp"
#include "gates/expect.hpp"
#include "gates/regression.hpp"
#include "sha256.hpp"
#include "vmlat/cpus.hpp"
#include "vmlat/errors.hpp"
#include "vmlat/plugin.hpp"
#include "vmlat/ssh.hpp"
#include "vmlat/units.hpp"

namespace vmlat {

std::string path_for_children(const std::string& path) {
  if (path.empty() || path.front() == '~') return path;
  return std::filesystem::absolute(path).lexically_normal().string();
}

// ---------------------------------------------------------------- Settings --

std::string Location::str() const {
  if (line <= 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

// Past this many, a plan is more wrong than right: the rest would only bury
// the first errors (and cost time on a hostile file).
constexpr std::size_t kMaxDiagnostics = 100;

void Diagnostics::error(Location where, std::string message) {
  if (items_.size() > kMaxDiagnostics) return;
  if (items_.size() == kMaxDiagnostics) {
    items_.push_back({Location{where.file, 0, 0}, "too many errors: stopped after the first " +
                                                      std::to_string(kMaxDiagnostics) + "; fix these and validate again"});
    return;
  }
  for (const auto& d : items_)  // the same problem found twice (validate, then run) is said once
    if (d.where.line == where.line && d.where.column == where.column && d.message == message) return;
  items_.push_back({std::move(where), std::move(message)});
}

std::string Diagnostics::str() const {
  std::string s;
  for (const auto& d : items_) s += d.str() + "\n";
  return s;
}

namespace {

Location location_of(const toml::source_region& region, const std::string& fallback_file) {
  Location l;
  l.file = region.path ? *region.path : fallback_file;
  l.line = static_cast<int>(region.begin.line);
  l.column = static_cast<int>(region.begin.column);
  return l;
}

std::string type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    default: return "a date/time";
  }
}

std::string render(const toml::node& n) {
  std::ostringstream ss;
  if (auto s = n.as_string()) ss << '"' << s->get() << '"';
  else if (n.is_table()) ss << "{...}";
  else if (n.is_array()) ss << "[...]";
  else n.visit([&](auto&& v) { ss << v; });
  return ss.str();
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t subst = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
      // transposition ("perido" -> "period")
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) cur[j] = std::min(cur[j], prev[j - 1]);
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string s;
  for (std::size_t i = 0; i < items.size(); ++i) s += (i ? std::string(sep) : "") + items[i];
  return s;
}

// A list for a message: the first few items, then how many more.
std::string join_some(const std::vector<std::string>& items, std::size_t shown = 12) {
  if (items.size() <= shown) return join(items, ", ");
  std::vector<std::string> head(items.begin(), items.begin() + static_cast<std::ptrdiff_t>(shown));
  return join(head, ", ") + ", ... (" + std::to_string(items.size()) + " in all)";
}

// A user's text quoted in a message, cut (at a UTF-8 boundary) when long;
// control characters written as escapes, so that a message stays one line.
std::string quote_short(std::string_view text, std::size_t max_bytes = 64) {
  auto visible = [](std::string_view t) {
    std::string out;
    for (char c : t) {
      const auto u = static_cast<unsigned char>(c);
      if (c == '\n') out += "\\n";
      else if (c == '\t') out += "\\t";
      else if (c == '\r') out += "\\r";
      else if (u < 0x20 || u == 0x7f) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\x%02x", u);
        out += buf;
      } else out += c;
    }
    return out;
  };
  if (text.size() <= max_bytes) return "'" + visible(text) + "'";
  std::size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return "'" + visible(text.substr(0, cut)) + "...' (" + std::to_string(text.size()) + " bytes)";
}

// "all" (an empty list: every CPU of the target) or a kernel CPU list.
std::optional<std::vector<int>> parse_cpu_text(std::string_view text, std::string* why) {
  if (text == "all") return std::vector<int>{};
  try {
    return parse_cpu_list(text);
  } catch (const std::invalid_argument&) {
    if (why) *why = "'" + std::string(text) + "' is not a CPU list: write \"all\", \"0-3,6\" or [0, 1]";
    return std::nullopt;
  }
}

}  // namespace

std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
  // Only where it is cheap: a suggestion is for a typo in a short name, and
  // each comparison costs |word| x |candidate|.
  constexpr std::size_t kLongest = 64, kMostCandidates = 1000;
  std::string best;
  if (word.size() > kLongest || candidates.size() > kMostCandidates) return best;
  std::size_t best_distance = std::max<std::size_t>(1, std::min<std::size_t>(3, word.size() / 3)) + 1;
  for (const auto& c : candidates) {
    std::size_t length_gap = c.size() > word.size() ? c.size() - word.size() : word.size() - c.size();
    if (c.size() > kLongest || length_gap >= best_distance) continue;  // the distance is at least the gap
    auto d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

struct Settings::Impl {
  const toml::table* table = nullptr;  // may be null: an absent table
  std::string section;
  std::string file;
  Location table_location;
  Diagnostics* diags = nullptr;
  std::set<std::string, std::less<>> known;
  std::shared_ptr<const void> keepalive;
  std::size_t errors_at_start = 0;

  const toml::node* get(std::string_view key) {
    known.emplace(key);
    return table ? table->get(key) : nullptr;
  }
  Location where(std::string_view key) const {
    if (table)
      for (auto&& [k, v] : *table)
        if (k.str() == key) return location_of(v.source(), file);
    return table_location;
  }
  void bad(std::string_view key, const std::string& message) {
    diags->error(where(key), message);
  }
};

Settings::Settings(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {
  impl_->errors_at_start = impl_->diags->all().size();
}
Settings::~Settings() = default;

const std::string& Settings::section() const { return impl_->section; }
bool Settings::has(std::string_view key) const { return impl_->table && impl_->table->contains(key); }
Location Settings::location(std::string_view key) const { return impl_->where(key); }
void Settings::allow(std::initializer_list<std::string_view> keys) {
  for (auto k : keys) impl_->known.emplace(k);
}
void Settings::error(std::string_view key, std::string message) {
  if (key.empty()) impl_->diags->error(impl_->table_location, impl_->section + ": " + message);
  else impl_->bad(key, message);
}
bool Settings::ok() const { return impl_->diags->all().size() == impl_->errors_at_start; }

std::string Settings::string(std::string_view key, std::string default_value) {
  auto* n = impl_->get(key);
  if (!n) return default_value;
  if (auto s = n->as_string()) return s->get();
  impl_->bad(key, "'" + std::string(key) + "' in " + impl_->section + " must be a string, not " + type_name(*n) + " (" + render(*n) + ")");
  return default_value;
}

std::string Settings::choice(std::string_view key, std::string default_value, const std::vector<std::string>& allowed) {
  auto* n = impl_->get(key);
  if (!n) return default_value;
  auto s = n->as_string();
  if (s && std::find(allowed.begin(), allowed.end(), s->get()) != allowed.end()) return s->get();
  std::string got = s ? "'" + s->get() + "'" : type_name(*n) + " (" + render(*n) + ")";
  std::string message = "'" + std::string(key) + "' in " + impl_->section + " must be one of: " + join(allowed, ", ") + " (got " + got + ")";
  if (s) {
    auto close = did_you_mean(s->get(), allowed);
    if (!close.empty()) message += "; did you mean '" + close + "'?";
  }
  impl_->bad(key, message);
  return default_value;
}

std::int64_t Settings::integer(std::string_view key, std::int64_t default_value, std::int64_t min, std::int64_t max) {
  auto* n = impl_->get(key);
  if (!n) return default_value;
  auto i = n->as_integer();
  if (!i) {
    impl_->bad(key, "'" + std::string(key) + "' in " + impl_->section + " must be an integer, not " + type_name(*n) + " (" + render(*n) + ")");
    return default_value;
  }
  if (i->get() < min || i->get() > max) {
    impl_->bad(key, "'" + std::string(key) + "' in " + impl_->section + " must be between " + std::to_string(min) + " and " + std::to_string(max) + " (got " + std::to_string(i->get()) + ")");
    return default_value;
  }
  return i->get();
}

bool Settings::boolean(std::string_view key, bool default_value) {
  auto* n = impl_->get(key);
  if (!n) return default_value;
  if (auto b = n->as_boolean()) return b->get();
  impl_->bad(key, "'" + std::string(key) + "' in " + impl_->section + " must be true or false, not " + type_name(*n) + " (" + render(*n) + ")");
  return default_value;
}

std::chrono::nanoseconds Settings::duration(std::string_view key, std::chrono::nanoseconds default_value,
                                            std::chrono::nanoseconds min, std::chrono::nanoseconds max) {
  auto* n = impl_->get(key);
  if (!n) return default_value;
  auto s = n->as_string();
  if (!s) {
    std::string hint = n->is_integer() ? ": durations need a unit, e.g. \"" + render(*n) + "us\" or \"" + render(*n) + "ms\"" : "";
    impl_->bad(key, "'" + std::string(key) + "' in " + impl_->section + " must be a duration string like \"50us\", not " + type_name(*n) + " (" + render(*n) + ")" + hint);
    return default_value;
  }
  std::string why;
  auto d = parse_duration(s->get(), &why);
  if (!d) {
    impl_->bad(key, "'" + std::string(key) + "' in " + impl_->section + ": " + why);
    return default_value;
  }
  if (*d < min || *d > max) {
    impl_->bad(key, "'" + std::string(key) + "' in " + impl_->section + " must be between " + format_duration(min) + " and " + format_duration(max) + " (got " + s->get() + ")");
    return default_value;
  }
  return *d;
}

std::vector<std::string> Settings::string_list(std::string_view key, std::vector<std::string> default_value) {
  auto* n = impl_->get(key);
  if (!n) return default_value;
  auto a = n->as_array();
  if (!a) {
    impl_->bad(key, "'" + std::string(key) + "' in " + impl_->section + " must be an array of strings, not " + type_name(*n) + " (" + render(*n) + ")");
    return default_value;
  }
  std::vector<std::string> out;
  for (auto&& item : *a) {
    if (auto s = item.as_string()) out.push_back(s->get());
    else {
      impl_->diags->error(location_of(item.source(), impl_->file), "'" + std::string(key) + "' in " + impl_->section + " must contain only strings, not " + type_name(item) + " (" + render(item) + ")");
      return default_value;
    }
  }
  return out;
}

std::vector<int> Settings::cpu_list(std::string_view key, std::vector<int> default_value) {
  auto* n = impl_->get(key);
  if (!n) return default_value;
  if (auto s = n->as_string()) {
    std::string why;
    if (auto cpus = parse_cpu_text(s->get(), &why)) {
      if (cpus->empty() || cpus->back() <= plan_limits::kCpu) return *cpus;
      why = "CPU " + std::to_string(cpus->back()) + " is out of range: CPU numbers go up to " + std::to_string(plan_limits::kCpu);
    }
    impl_->bad(key, "'" + std::string(key) + "' in " + impl_->section + ": " + why);
    return default_value;
  }
  if (auto a = n->as_array()) {
    std::vector<int> cpus;
    for (auto&& item : *a) {
      auto i = item.as_integer();
      if (!i || i->get() < 0 || i->get() > plan_limits::kCpu) {
        impl_->diags->error(location_of(item.source(), impl_->file), "'" + std::string(key) + "' in " + impl_->section + " must list CPU numbers (0.." + std::to_string(plan_limits::kCpu) + "), got " + render(item));
        return default_value;
      }
      cpus.push_back(static_cast<int>(i->get()));
    }
    std::sort(cpus.begin(), cpus.end());
    cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
    if (cpus.empty()) impl_->bad(key, "'" + std::string(key) + "' in " + impl_->section + " is empty: write \"all\" or list CPUs");
    return cpus;
  }
  impl_->bad(key, "'" + std::string(key) + "' in " + impl_->section + " must be \"all\", a CPU list string like \"0-3\" or an array like [0, 1], not " + type_name(*n));
  return default_value;
}

std::vector<std::pair<std::string, std::string>> Settings::string_map(std::string_view key) {
  auto* n = impl_->get(key);
  std::vector<std::pair<std::string, std::string>> out;
  if (!n) return out;
  auto t = n->as_table();
  if (!t) {
    impl_->bad(key, "'" + std::string(key) + "' in " + impl_->section + " must be a table, not " + type_name(*n));
    return out;
  }
  for (auto&& [k, v] : *t) {
    if (auto s = v.as_string()) out.emplace_back(std::string(k.str()), s->get());
    else if (auto i = v.as_integer()) out.emplace_back(std::string(k.str()), std::to_string(i->get()));
    else impl_->diags->error(location_of(v.source(), impl_->file), "'" + std::string(key) + "." + std::string(k.str()) + "' in " + impl_->section + " must be a string or an integer, not " + type_name(v));
  }
  return out;
}

void Settings::finish() {
  if (!impl_->table) return;
  std::vector<std::string> known(impl_->known.begin(), impl_->known.end());
  for (auto&& [k, v] : *impl_->table) {
    if (impl_->known.count(k.str())) continue;
    std::string message = "unknown key '" + std::string(k.str()) + "' in " + impl_->section;
    auto close = did_you_mean(k.str(), known);
    if (!close.empty()) message += "; did you mean '" + close + "'?";
    else if (!known.empty()) message += " (known keys: " + join(known, ", ") + ")";
    impl_->diags->error(location_of(k.source(), impl_->file), message);
  }
}

namespace {

Settings make_settings(const toml::table* table, std::string section, const std::string& file, Location table_location,
                       Diagnostics& diags, std::shared_ptr<const void> keepalive) {
  auto impl = std::make_shared<Settings::Impl>();
  impl->table = table;
  impl->section = std::move(section);
  impl->file = file;
  impl->table_location = std::move(table_location);
  impl->diags = &diags;
  impl->keepalive = std::move(keepalive);
  return Settings(impl);
}

}  // namespace

Settings instance_settings(const Instance& instance, Diagnostics& diags) {
  auto* table = static_cast<const toml::table*>(instance.table.get());
  auto s = make_settings(table, "[" + instance.kind + "." + instance.name + "]", instance.location.file, instance.location, diags,
                         instance.table);
  // Keys the core reads itself.
  s.allow({"plugin"});
  if (instance.kind == "workload") s.allow({"where"});
  return s;
}

// -------------------------------------------------------------------- Plan --

bool selector_matches(const Selector& selector, const std::vector<std::pair<std::string, std::string>>& axes) {
  for (const auto& entry : selector) {
    // Not a structured binding: clang 14 (ci/fuzz) refuses to capture one.
    const std::string& axis = entry.first;
    const auto& values = entry.second;
    auto it = std::find_if(axes.begin(), axes.end(), [&](const auto& kv) { return kv.first == axis; });
    if (it == axes.end() || !std::binary_search(values.begin(), values.end(), it->second)) return false;  // sorted by parse_selector
  }
  return true;
}

bool GateSpec::matches(const CellSpec& cell) const { return selector_matches(match, cell.axes); }

json selector_json(const Selector& s) {
  json j = json::object();
  for (const auto& [axis, values] : s) j[axis] = values;
  return j;
}

std::optional<Selector> selector_from_json(const json& j) {
  if (!j.is_object() || j.empty()) return std::nullopt;
  Selector sel;
  for (const auto& [axis, values] : j.items()) {
    if (!values.is_array()) return std::nullopt;
    std::vector<std::string> v;
    for (const auto& x : values) {
      if (!x.is_string()) return std::nullopt;
      v.push_back(x.get<std::string>());
    }
    std::sort(v.begin(), v.end());  // selector_matches searches them
    sel.emplace_back(axis, std::move(v));
  }
  return sel;
}

json report_spec_json(const ReportSpec& r) {
  json figures = json::array();
  for (const auto& f : r.figures) figures.push_back(json{{"kind", f.draw}, {"title", f.title}, {"cells", selector_json(f.cells)}});
  return json{{"default_figures", r.default_figures}, {"figures", figures}};
}

std::optional<ReportSpec> report_spec_from_json(const json& j) {
  if (!j.is_object()) return std::nullopt;
  ReportSpec r;
  r.declared = true;
  if (j.contains("default_figures") && j["default_figures"].is_boolean()) r.default_figures = j["default_figures"].get<bool>();
  if (!j.contains("figures") || !j["figures"].is_array()) return r;
  for (const auto& f : j["figures"]) {
    if (!f.is_object()) return std::nullopt;
    FigureSpec one;
    auto cells = selector_from_json(f.contains("cells") ? f["cells"] : json());
    if (!cells) return std::nullopt;
    one.cells = std::move(*cells);
    one.draw = f.value("kind", std::string("both"));
    if (one.draw != "both" && one.draw != "ccdf" && one.draw != "histogram") return std::nullopt;
    one.title = f.value("title", std::string());
    r.figures.push_back(std::move(one));
  }
  return r;
}

namespace {

const std::vector<std::string> kBuiltinAxes = {"backend", "workload", "probe", "period"};
const std::vector<std::string> kKinds = {"backend", "workload", "probe"};

bool valid_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

std::string sanitize(std::string_view v) {
  std::string s;
  for (char c : v) s += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_') ? c : '_';
  return s;
}

// ------------------------------------------------------------ plan input --
//
// Everything here runs before TOML++ sees a byte: it bounds what the parser
// is given (size, kind of file) and refuses text that is not TOML in ways
// TOML++ 3.3 does not survive cleanly (see docs/plan-format.md, "Limits").

std::string with_thousands(std::uintmax_t n) {
  std::string digits = std::to_string(n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// Regular files only, at most plan_limits::kFileBytes. The kind is checked
// before opening (opening a device can have effects of its own), and again on
// the descriptor, which is opened non-blocking so that nothing can stall it.
std::optional<std::string> read_plan_file(const std::string& file, Diagnostics& diags) {
  const Location where{file, 0, 0};
  const std::string limit = "a plan may be at most " + with_thousands(plan_limits::kFileBytes) + " bytes (1 MiB)";
  auto refuse_kind = [&](mode_t mode) {
    diags.error(where, std::string("cannot read the plan: this is ") + file_kind(mode) +
                           ", not a plan file: name a .toml file (e.g. plans/quickstart.toml)");
    return std::nullopt;
  };
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    diags.error(where, "cannot read the plan: " + std::string(std::strerror(errno)));
    return std::nullopt;
  }
  if (!S_ISREG(st.st_mode)) return refuse_kind(st.st_mode);
  const int fd = ::open(file.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    diags.error(where, "cannot read the plan: " + std::string(std::strerror(errno)));
    return std::nullopt;
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return refuse_kind(st.st_mode);
  if (static_cast<std::uintmax_t>(st.st_size) > plan_limits::kFileBytes) {
    diags.error(where, "the plan is " + with_thousands(static_cast<std::uintmax_t>(st.st_size)) + " bytes: " + limit);
    return std::nullopt;
  }
  // The size may have changed since fstat (or be unknown, as in /proc): read
  // up to one byte past the limit, growing the buffer as data comes.
  std::string text;
  std::size_t used = 0;
  while (used <= plan_limits::kFileBytes) {
    if (used == text.size())
      text.resize(std::min<std::size_t>(plan_limits::kFileBytes + 1,
                                        std::max<std::size_t>({4096, 2 * used, static_cast<std::size_t>(st.st_size) + 1})));
    const ssize_t n = ::read(fd, text.data() + used, text.size() - used);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      diags.error(where, "cannot read the plan: " + std::string(std::strerror(errno)));
      return std::nullopt;
    }
    if (n == 0) break;
    used += static_cast<std::size_t>(n);
  }
  if (used > plan_limits::kFileBytes) {
    diags.error(where, "the plan grew past " + with_thousands(plan_limits::kFileBytes) + " bytes while it was read: " + limit);
    return std::nullopt;
  }
  text.resize(used);
  return text;
}

std::string codepoint_name(char32_t cp) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(cp));
  return buf;
}

// The first problem of the text, as file:line:col (columns count code points,
// as TOML++ does), or true if TOML++ may parse it. Refused: invalid UTF-8;
// control characters other than tab, CR and LF (TOML allows them nowhere);
// non-ASCII outside strings and comments (TOML allows it nowhere else; there
// TOML++ 3.3's Unicode whitespace check is reached, which has undefined
// behaviour on U+00A1..U+0499: see tests/unit/toml_unicode_test.cpp); dotted
// keys of more than plan_limits::kKeyParts parts (TOML++ nests a table per
// part and recurses per level: tens of thousands overflow its stack).
bool check_plan_text(std::string_view text, const std::string& file, Diagnostics& diags) {
  std::size_t i = 0;
  int line = 1, column = 1;
  auto fail = [&](std::string message) {
    diags.error(Location{file, line, column}, std::move(message));
    return false;
  };
  if (text.substr(0, 3) == "\xEF\xBB\xBF") i = 3;  // a UTF-8 byte order mark, which TOML++ skips

  enum class In { code, comment, basic, ml_basic, literal, ml_literal } in = In::code;
  bool escaped = false;            // basic strings: the character after a backslash
  std::size_t key_parts = 0;       // parts of the dotted key being read (code only)
  bool in_part = false, after_dot = false, gap = false;
  auto reset_key = [&] { key_parts = 0, in_part = after_dot = gap = false; };
  auto part_starts = [&] {
    if (in_part && !gap) return true;
    key_parts = after_dot ? key_parts + 1 : 1;
    in_part = true, after_dot = gap = false;
    return key_parts <= plan_limits::kKeyParts;
  };
  auto key_too_deep = [&] {
    return fail("a dotted key of more than " + std::to_string(plan_limits::kKeyParts) + " parts: plan keys have a few (probe.cyclictest)");
  };
  // A run of `q` at i: how many.
  auto run_of = [&](char q) {
    std::size_t n = 0;
    while (i + n < text.size() && text[i + n] == q) ++n;
    return n;
  };
  auto skip_ascii = [&](std::size_t n) {
    i += n;
    column += static_cast<int>(n);
  };

  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    char32_t cp = lead;
    std::size_t length = 1;
    if (lead >= 0x80) {
      // UTF-8: the shortest form only, no surrogates, nothing past U+10FFFF.
      unsigned char lo = 0x80, hi = 0xBF;
      if (lead >= 0xC2 && lead <= 0xDF) length = 2, cp = lead & 0x1F;
      else if (lead >= 0xE0 && lead <= 0xEF) length = 3, cp = lead & 0x0F, lo = lead == 0xE0 ? 0xA0 : 0x80, hi = lead == 0xED ? 0x9F : 0xBF;
      else if (lead >= 0xF0 && lead <= 0xF4) length = 4, cp = lead & 0x07, lo = lead == 0xF0 ? 0x90 : 0x80, hi = lead == 0xF4 ? 0x8F : 0xBF;
      else length = 0;
      for (std::size_t k = 1; length && k < length; ++k) {
        const auto b = i + k < text.size() ? static_cast<unsigned char>(text[i + k]) : 0;
        if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) length = 0;
        else cp = (cp << 6) | (b & 0x3F);
      }
      if (!length) {
        char byte[8];
        std::snprintf(byte, sizeof byte, "0x%02X", lead);
        return fail(std::string("invalid UTF-8 (byte ") + byte + "): a plan is UTF-8 text");
      }
    } else if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0x7F) {
      return fail("control character " + codepoint_name(cp) + (cp == 0 ? " (NUL)" : "") +
                  ": TOML allows none but tab and line ends (is this a binary file?)");
    }
    switch (in) {
      case In::code:
        if (cp >= 0x80)
          return fail("character '" + std::string(text.substr(i, length)) + "' (" + codepoint_name(cp) +
                      ") outside a string or comment: TOML allows non-ASCII text only in \"strings\" and # comments");
        if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') || cp == '_' || cp == '-') {
          if (!part_starts()) return key_too_deep();
        } else if (cp == '"' || cp == '\'') {
          if (!part_starts()) return key_too_deep();
          const char q = static_cast<char>(cp);
          const std::size_t n = run_of(q);
          if (n >= 3) {
            in = q == '"' ? In::ml_basic : In::ml_literal;
            skip_ascii(3);
          } else if (n == 2) {
            skip_ascii(2);  // an empty string
          } else {
            in = q == '"' ? In::basic : In::literal;
            skip_ascii(1);
          }
          continue;
        } else if (cp == '.') {
          if (in_part) in_part = false, after_dot = true, gap = false;
          else reset_key();
        } else if (cp == ' ' || cp == '\t') {
          gap = true;
        } else {
          reset_key();
          if (cp == '#') in = In::comment;
        }
        break;
      case In::comment:
        if (cp == '\n') in = In::code, reset_key();
        break;
      case In::basic:
        if (escaped) escaped = false;
        else if (cp == '\\') escaped = true;
        else if (cp == '"') in = In::code, in_part = true, gap = false;
        if (cp == '\n') in = In::code, escaped = false, reset_key();  // unterminated: TOML++ says so
        break;
      case In::literal:
        if (cp == '\'') in = In::code, in_part = true, gap = false;
        else if (cp == '\n') in = In::code, reset_key();
        break;
      case In::ml_basic:
        if (escaped) {
          escaped = false;  // \" does not end the string
        } else if (cp == '\\') {
          escaped = true;
        } else if (cp == '"') {
          const std::size_t n = run_of('"');
          if (n >= 3) in = In::code, in_part = true, gap = false;  // up to two more quotes belong to the string
          skip_ascii(std::min<std::size_t>(n, 5));
          continue;
        }
        break;
      case In::ml_literal:
        if (cp == '\'') {
          const std::size_t n = run_of('\'');
          if (n >= 3) in = In::code, in_part = true, gap = false;
          skip_ascii(std::min<std::size_t>(n, 5));
          continue;
        }
        break;
    }
    i += length;
    if (cp == '\n') ++line, column = 1;
    else ++column;
  }
  return true;
}

// What the parsed tree may hold: keys of at most plan_limits::kKeyChars,
// strings of at most plan_limits::kStringBytes. Iterative: the tree may be
// deep.
bool check_plan_tree(const toml::table& root, const std::string& file, Diagnostics& diags) {
  bool ok = true;
  std::vector<const toml::node*> pending{&root};
  while (!pending.empty()) {
    const toml::node* node = pending.back();
    pending.pop_back();
    if (auto* t = node->as_table()) {
      for (auto&& [k, v] : *t) {
        if (k.str().size() > plan_limits::kKeyChars) {
          diags.error(location_of(k.source(), file), "a key of " + std::to_string(k.str().size()) + " bytes (" + std::string(k.str().substr(0, 32)) +
                                                         "...): keys may have at most " + std::to_string(plan_limits::kKeyChars));
          ok = false;
        }
        pending.push_back(&v);
      }
    } else if (auto* a = node->as_array()) {
      for (auto&& v : *a) pending.push_back(&v);
    } else if (auto* s = node->as_string()) {
      if (s->get().size() > plan_limits::kStringBytes) {
        diags.error(location_of(s->source(), file), "a string of " + with_thousands(s->get().size()) + " bytes: strings may have at most " +
                                                        with_thousands(plan_limits::kStringBytes) + " (64 KiB)");
        ok = false;
      }
    }
  }
  return ok;
}

struct PlanParser {
  Plan& plan;
  Diagnostics& diags;
  std::string file;
  std::shared_ptr<toml::table> root;
  // Set by parse_matrix: the axes are free of errors and within the limits,
  // and backend, workload and probe are among them, so expand() is meaningful.
  bool matrix_complete = false;
  std::unordered_map<std::string, const Axis*> axis_by_name;  // into plan.axes, set by parse_matrix
  std::vector<std::string> axis_name_list;
  std::unordered_map<std::string, std::unordered_set<std::string>> axis_value_sets;  // for selectors

  Location at(const toml::node& n) const { return location_of(n.source(), file); }
  Location at_key(const toml::table& t, std::string_view key) const {
    for (auto&& [k, v] : t)
      if (k.str() == key) return location_of(k.source(), file);
    return location_of(t.source(), file);
  }
  Settings settings(const toml::table* t, std::string section) {
    Location l = t ? at(*t) : Location{file, 0, 0};
    return make_settings(t, std::move(section), file, l, diags, root);
  }

  void parse_plan_table() {
    auto* t = (*root)["plan"].as_table();
    if (root->contains("plan") && !t) diags.error(at_key(*root, "plan"), "'plan' must be a table: [plan]");
    auto s = settings(t, "[plan]");
    plan.name = s.string("name", plan.path.stem().string());
    if (!valid_name(plan.name)) s.error("name", "plan name '" + plan.name + "' may only contain letters, digits, '-', '_' and '.'");
    plan.description = s.string("description", "");
    plan.duration = s.duration("duration", plan.duration, std::chrono::milliseconds(100), std::chrono::hours(24 * 7));
    plan.period = s.duration("period", plan.period, std::chrono::microseconds(1), std::chrono::seconds(10));
    plan.cpus = s.cpu_list("cpus", {});
    plan.results_dir = s.string("results", plan.results_dir);
    plan.retest = static_cast<int>(s.integer("retest", 0, 0, 10));
    plan.flaky_fails = s.choice("flaky", "pass", {"pass", "fail"}) == "fail";
    plan.max_parallel_hosts = static_cast<std::size_t>(s.integer("max_parallel_hosts", 16, 1, 256));
    s.finish();
  }

  void parse_timeouts() {
    auto* t = (*root)["timeouts"].as_table();
    auto s = settings(t, "[timeouts]");
    auto& to = plan.timeouts;
    std::chrono::nanoseconds lo = std::chrono::seconds(1), hi = std::chrono::hours(24);
    to.prepare = s.duration("prepare", to.prepare, lo, hi);
    to.boot = s.duration("boot", to.boot, lo, hi);
    to.start = s.duration("start", to.start, lo, hi);
    to.measure_margin = s.duration("measure_margin", to.measure_margin, lo, hi);
    to.stop = s.duration("stop", to.stop, lo, hi);
    s.finish();
  }

  void parse_hosts() {
    auto* t = (*root)["hosts"].as_table();
    if (!t) {
      if (root->contains("hosts")) diags.error(at_key(*root, "hosts"), "'hosts' must be a table of hosts: [hosts.<name>]");
      plan.hosts.push_back(HostSpec{});
      return;
    }
    plan.hosts_declared = true;
    for (auto&& [name, node] : *t) {
      auto* h = node.as_table();
      std::string host_name(name.str());
      if (!h) {
        diags.error(location_of(name.source(), file), "[hosts." + host_name + "] must be a table");
        continue;
      }
      if (!valid_name(host_name))
        diags.error(location_of(name.source(), file), "host name '" + host_name + "' may only contain letters, digits, '-', '_' and '.'");
      auto s = settings(h, "[hosts." + host_name + "]");
      HostSpec spec;
      spec.name = host_name;
      spec.location = at(*h);
      // Everything here may reach ssh's or Ansible's command line or a
      // generated inventory: a leading '-' would be an option, a newline a
      // new entry. Refuse what no host name, user or path needs.
      auto check = [&](const char* key, const std::string& value, SshSetting kind) {
        if (auto why = ssh_setting_problem(kind, value))
          s.error(key, "'" + std::string(key) + "' in [hosts." + host_name + "] " + *why);
      };
      spec.address = s.string("address", "");
      if (spec.address == "local") spec.address.clear();  // this machine, in-process
      if (!spec.address.empty()) check("address", spec.address, SshSetting::address);
      spec.port = static_cast<int>(s.integer("port", 0, 0, 65535));
      spec.user = s.string("user", "");
      if (!spec.user.empty()) check("user", spec.user, SshSetting::user);
      spec.identity_file = s.string("identity_file", "");
      if (!spec.identity_file.empty()) check("identity_file", spec.identity_file, SshSetting::identity_file);
      spec.identity_file = path_for_children(spec.identity_file);
      spec.known_hosts = s.string("known_hosts", "");
      if (!spec.known_hosts.empty()) check("known_hosts", spec.known_hosts, SshSetting::known_hosts);
      spec.known_hosts = path_for_children(spec.known_hosts);
      spec.tags = s.string_list("tags", {});
      for (const auto& tag : spec.tags)
        if (tag.empty() || tag.size() > 64 ||
            !std::all_of(tag.begin(), tag.end(), [](unsigned char c) { return std::isalnum(c) || c == '_'; }))
          s.error("tags", "tag '" + tag + "' of host '" + host_name + "' may only contain letters, digits and '_' (it becomes an Ansible group)");
      spec.provision = s.boolean("provision", true);
      s.allow({"vars"});
      if (auto* v = h->get("vars")) {
        if (auto* vt = v->as_table()) {
          for (auto&& [vk, vv] : *vt) {
            std::string key(vk.str());
            bool key_ok = !key.empty() && key.size() <= 64 && !std::isdigit(static_cast<unsigned char>(key[0])) &&
                          std::all_of(key.begin(), key.end(), [](unsigned char c) { return std::isalnum(c) || c == '_'; });
            if (!key_ok) {
              diags.error(location_of(vk.source(), file), "host variable '" + key + "' of host '" + host_name + "' must be an Ansible variable name (letters, digits, '_')");
              continue;
            }
            if (key.rfind("ansible_", 0) == 0) {
              diags.error(location_of(vk.source(), file), "host variable '" + key + "' of host '" + host_name +
                                                              "': set the connection with address, port, user and identity_file, not ansible_* variables");
              continue;
            }
            if (auto str = vv.as_string()) {
              // vmlat's own layout on the host: used by ssh commands that
              // start in the login directory and by run-cell, so it must not
              // depend on a working directory.
              if ((key.starts_with("vmlat_common_") && key.ends_with("_dir")) || key == "vmlat_common_prefix")
                if (str->get().empty() || str->get().front() != '/' || str->get().find("/../") != std::string::npos ||
                    str->get().ends_with("/.."))
                  diags.error(at(vv), "host variable '" + key + "' of host '" + host_name + "' must be an absolute path without '..', not \"" +
                                          str->get() + "\"");
              spec.vars[key] = str->get();
            } else if (auto i = vv.as_integer()) spec.vars[key] = i->get();
            else if (auto b = vv.as_boolean()) spec.vars[key] = b->get();
            else if (auto f = vv.as_floating_point()) spec.vars[key] = f->get();
            else if (auto a = vv.as_array()) {
              json list = json::array();
              for (auto&& item : *a) {
                if (auto si = item.as_string()) list.push_back(si->get());
                else if (auto ii = item.as_integer()) list.push_back(ii->get());
                else diags.error(at(item), "host variable '" + key + "' of host '" + host_name + "': list items must be strings or integers");
              }
              spec.vars[key] = list;
            } else diags.error(at(vv), "host variable '" + key + "' of host '" + host_name + "' must be a string, number, boolean or list");
          }
        } else diags.error(at(*v), "'vars' in [hosts." + host_name + "] must be a table, e.g. vars = { isolated_cpus = \"2-3\" }");
      }
      s.finish();
      plan.hosts.push_back(spec);
    }
    if (plan.hosts.empty()) {
      diags.error(at_key(*root, "hosts"), "[hosts] declares no host: add [hosts.<name>] tables or remove [hosts]");
      plan.hosts.push_back(HostSpec{});
    }
  }

  void parse_instances() {
    for (const auto& kind : kKinds) {
      auto* node = root->get(kind);
      if (!node) continue;
      auto* t = node->as_table();
      if (!t) {
        diags.error(at_key(*root, kind), "'" + kind + "' must be a table of named instances: [" + kind + ".<name>]");
        continue;
      }
      auto& target = kind == "backend" ? plan.backends : kind == "workload" ? plan.workloads : plan.probes;
      if (t->size() > plan_limits::kInstances)
        diags.error(at_key(*root, kind), "the plan declares " + with_thousands(t->size()) + " " + kind + " instances: at most " +
                                             with_thousands(plan_limits::kInstances) + " are allowed (only the first are checked)");
      for (auto&& [name, inst] : *t) {
        if (target.size() == plan_limits::kInstances) break;
        std::string n(name.str());
        auto* it = inst.as_table();
        if (!it) {
          diags.error(location_of(name.source(), file), "[" + kind + "." + n + "] must be a table, not " + type_name(inst) +
                                                            " (write [" + kind + "." + n + "] with its settings below)");
          continue;
        }
        if (!valid_name(n)) diags.error(location_of(name.source(), file), "instance name '" + n + "' may only contain letters, digits, '-', '_' and '.'");
        if (kind == "workload" && n == "none") diags.error(location_of(name.source(), file), "'none' is reserved: it means no workload");
        Instance instance;
        instance.kind = kind;
        instance.name = n;
        instance.location = at(*it);
        instance.table = std::shared_ptr<const void>(root, it);
        instance.plugin = n;
        instance.plugin_location = instance.location;
        if (auto* p = it->get("plugin")) {
          if (auto ps = p->as_string()) instance.plugin = ps->get();
          else diags.error(at(*p), "'plugin' in [" + kind + "." + n + "] must be a string naming a plugin, not " + type_name(*p));
          instance.plugin_location = at(*p);
        }
        if (kind == "workload") {
          instance.where = "host";
          if (auto* w = it->get("where")) {
            if (auto ws = w->as_string()) instance.where = ws->get();
            else diags.error(at(*w), "'where' in [workload." + n + "] must be a string: \"host\", \"guest\" or \"dom0\"");
          }
        }
        target.emplace(n, std::move(instance));
      }
    }
  }

  std::vector<std::string> instance_names(const std::map<std::string, Instance>& m) {
    std::vector<std::string> names;
    for (const auto& [k, v] : m) names.push_back(k);
    return names;
  }

  void parse_matrix() {
    const std::size_t errors_before = diags.all().size();
    auto* t = (*root)["matrix"].as_table();
    if (root->contains("matrix") && !t) diags.error(at_key(*root, "matrix"), "'matrix' must be a table: [matrix]");
    std::map<std::string, Axis> builtin;
    std::vector<Axis> free_axes;
    if (t) {
      // TOML++ tables are sorted by key; keep the order in which the plan wrote them.
      std::vector<std::pair<std::string_view, const toml::node*>> entries;
      for (auto&& [k, v] : *t) entries.emplace_back(k.str(), &v);
      std::sort(entries.begin(), entries.end(), [&](auto& a, auto& b) {
        auto sa = a.second->source().begin, sb = b.second->source().begin;
        return std::tie(sa.line, sa.column) < std::tie(sb.line, sb.column);
      });
      for (auto& [key, node] : entries) {
        std::string name(key);
        if (name == "exclude" || name == "scope") continue;
        Axis axis;
        axis.name = name;
        axis.location = at(*node);
        if (!valid_name(name)) diags.error(at_key(*t, key), "axis name '" + name + "' may only contain letters, digits, '-', '_' and '.'");
        auto* arr = node->as_array();
        if (!arr || arr->empty()) {
          diags.error(at(*node), "matrix axis '" + name + "' must be a non-empty array of values, e.g. " + name + " = [\"a\", \"b\"]");
          continue;
        }
        std::unordered_set<std::string> seen;
        std::unordered_map<std::string, std::string> id_part_of;  // sanitized -> the value that made it
        for (auto&& item : *arr) {
          std::string value;
          if (auto s = item.as_string()) value = s->get();
          else if (auto i = item.as_integer()) value = std::to_string(i->get());
          else {
            diags.error(at(item), "values of matrix axis '" + name + "' must be strings, not " + type_name(item));
            continue;
          }
          if (!seen.insert(value).second) {
            diags.error(at(item), "value " + quote_short(value) + " appears twice in matrix axis '" + name + "'");
            continue;
          }
          if (auto [it, fresh] = id_part_of.emplace(sanitize(value), value); !fresh) {
            diags.error(at(item), "values " + quote_short(it->second) + " and " + quote_short(value) + " of matrix axis '" + name +
                                      "' give the same cell id part '" + it->first + "' (ids keep letters, digits, '.' and '_'): rename one");
            continue;
          }
          check_axis_value(name, value, at(item));
          axis.values.push_back(value);
        }
        if (std::find(kBuiltinAxes.begin(), kBuiltinAxes.end(), name) != kBuiltinAxes.end()) builtin[name] = axis;
        else free_axes.push_back(axis);
      }
    }
    // Absent plugin axes: the one declared instance (or no workload).
    Location plan_loc{file, 0, 0};
    auto implicit = [&](const std::string& name, const std::map<std::string, Instance>& instances, bool none_ok) {
      if (builtin.count(name)) return;
      Axis a;
      a.name = name;
      a.location = plan_loc;
      if (instances.size() == 1) a.values = {instances.begin()->first};
      else if (instances.empty() && none_ok) a.values = {"none"};
      else if (instances.empty()) {
        diags.error(plan_loc, "the plan declares no " + name + ": add a [" + name + ".<name>] table (e.g. [" + name + "." +
                                  (name == "backend" ? "host" : "cyclictest") + "])");
        return;
      } else {
        diags.error(instances.begin()->second.location, "the plan declares " + std::to_string(instances.size()) + " " + name + " instances (" +
                                  join_some(instance_names(instances)) + "): say which to run with matrix." + name + " = [...]");
        return;
      }
      builtin[name] = a;
    };
    implicit("backend", plan.backends, false);
    implicit("workload", plan.workloads, true);
    implicit("probe", plan.probes, false);
    if (!builtin.count("period")) builtin["period"] = Axis{"period", {format_duration(plan.period)}, plan_loc};
    for (const auto& name : kBuiltinAxes)
      if (builtin.count(name)) plan.axes.push_back(builtin[name]);
    for (auto& a : free_axes) plan.axes.push_back(std::move(a));
    for (const auto& a : plan.axes) {
      axis_by_name.emplace(a.name, &a);
      axis_name_list.push_back(a.name);
    }
    const bool sizes_ok = check_matrix_size(t ? at(*t) : plan_loc);

    if (t)
      if (auto* scope = t->get("scope")) parse_scopes(*scope);
    default_scopes();
    if (t)
      if (auto* ex = t->get("exclude")) parse_excludes(*ex);
    matrix_complete = sizes_ok && diags.all().size() == errors_before && find_axis("backend") && find_axis("workload") &&
                      find_axis("probe");
  }

  // Before anything is expanded: the number of cells and the length of their
  // ids, both computable from the axes alone.
  bool check_matrix_size(const Location& where) {
    bool ok = true;
    if (plan.axes.size() > plan_limits::kAxes) {
      diags.error(where, "the matrix has " + with_thousands(plan.axes.size()) + " axes (backend, workload, probe and period among them): at most " +
                             std::to_string(plan_limits::kAxes) + " are allowed");
      ok = false;
    }
    const std::uint64_t cells = matrix_cells(plan);
    if (cells > plan_limits::kCells) {
      std::vector<std::string> factors;
      for (const auto& a : plan.axes)
        if (a.values.size() > 1) factors.push_back(a.name + " " + std::to_string(a.values.size()));
      std::string product;
      for (std::size_t i = 0; i < factors.size() && i < 16; ++i) product += (i ? " x " : "") + factors[i];
      if (factors.size() > 16) product += " x ...";
      diags.error(where, "the matrix has " + (cells == UINT64_MAX ? "more than " + with_thousands(cells) : with_thousands(cells)) +
                             " cells (" + product + "): at most " + with_thousands(plan_limits::kCells) +
                             " are allowed; remove axis values or split the plan");
      ok = false;
    }
    std::size_t id_chars = 0;
    const Axis* longest_axis = nullptr;
    std::size_t longest = 0;
    for (const auto& a : plan.axes) {
      std::size_t most = 0;
      for (const auto& v : a.values) most = std::max(most, v.size());
      id_chars += most + (id_chars ? 1 : 0);
      if (most >= longest) longest = most, longest_axis = &a;
    }
    if (id_chars > plan_limits::kCellIdChars) {
      diags.error(where, "cell ids (the axis values joined with '-') would be up to " + with_thousands(id_chars) +
                             " characters long: at most " + std::to_string(plan_limits::kCellIdChars) +
                             " are allowed, as each cell is a directory cells/<id>/; shorten the values" +
                             (longest_axis ? " of axis '" + longest_axis->name + "'" : std::string()));
      ok = false;
    }
    return ok;
  }

  void check_axis_value(const std::string& axis, const std::string& value, Location where) {
    auto check_instance = [&](const std::map<std::string, Instance>& instances, bool none_ok) {
      if (none_ok && value == "none") return;
      if (instances.count(value)) return;
      auto names = instance_names(instances);
      std::string message = "matrix." + axis + " names " + quote_short(value) + ", but there is no [" + axis + "." + value + "] table";
      auto close = did_you_mean(value, names);
      if (!close.empty()) message += "; did you mean '" + close + "'?";
      else if (!names.empty()) message += " (declared: " + join_some(names) + ")";
      diags.error(where, message);
    };
    if (axis == "backend") check_instance(plan.backends, false);
    else if (axis == "workload") check_instance(plan.workloads, true);
    else if (axis == "probe") check_instance(plan.probes, false);
    else if (axis == "period") {
      std::string why;
      auto d = parse_duration(value, &why);
      if (!d) diags.error(where, "matrix.period: " + why);
      else if (*d < std::chrono::microseconds(1) || *d > std::chrono::seconds(10))
        diags.error(where, "matrix.period value " + quote_short(value) + " must be between 1us and 10s");
    } else if (axis == "host") {
      // Pins cells to named hosts (placement, docs/plan-format.md).
      if (std::none_of(plan.hosts.begin(), plan.hosts.end(), [&](const HostSpec& h) { return h.name == value; })) {
        std::vector<std::string> names;
        for (const auto& h : plan.hosts) names.push_back(h.name);
        std::string message = "matrix.host names " + quote_short(value) + ", but there is no [hosts.<name>] table for it";
        auto close = did_you_mean(value, names);
        message += close.empty() ? " (hosts: " + join(names, ", ") + ")" : "; did you mean '" + close + "'?";
        diags.error(where, message);
      }
    } else if (axis == "host_kernel") {
      if (value != "rt" && value != "nrt" && value != "any") {
        std::string message = "matrix.host_kernel value " + quote_short(value) + " must be \"rt\", \"nrt\" or \"any\"";
        auto close = did_you_mean(value, {"rt", "nrt", "any"});
        if (!close.empty()) message += "; did you mean '" + close + "'?";
        diags.error(where, message);
      }
    }
  }

  // By name, once plan.axes is final (selectors look axes up per key).
  const Axis* find_axis(std::string_view name) const {
    auto it = axis_by_name.find(std::string(name));
    return it == axis_by_name.end() ? nullptr : it->second;
  }

  const std::vector<std::string>& axis_names() const { return axis_name_list; }

  const std::unordered_set<std::string>& axis_values(const Axis& axis) {
    auto [it, fresh] = axis_value_sets.try_emplace(axis.name);
    if (fresh) it->second.insert(axis.values.begin(), axis.values.end());
    return it->second;
  }

  // A { axis = "value" | ["v", ...] } selector, as used by gates and excludes.
  std::optional<Selector> parse_selector(const toml::node& node, const std::string& what) {
    auto* t = node.as_table();
    if (!t) {
      diags.error(at(node), what + " must be a table of axis = value(s), e.g. { workload = \"stress\" }");
      return std::nullopt;
    }
    Selector out;
    bool ok = true;
    for (auto&& [k, v] : *t) {
      std::string axis_name(k.str());
      const Axis* axis = find_axis(axis_name);
      if (!axis) {
        std::string message = what + " names axis " + quote_short(axis_name) + ", which the matrix does not have";
        auto close = did_you_mean(axis_name, axis_names());
        message += close.empty() ? " (axes: " + join_some(axis_names()) + ")" : "; did you mean '" + close + "'?";
        diags.error(location_of(k.source(), file), message);
        ok = false;
        continue;
      }
      std::vector<std::pair<std::string, Location>> values;
      if (auto s = v.as_string()) values.emplace_back(s->get(), at(v));
      else if (auto a = v.as_array()) {
        for (auto&& item : *a) {
          if (auto s2 = item.as_string()) values.emplace_back(s2->get(), at(item));
          else {
            diags.error(at(item), what + ": values of '" + axis_name + "' must be strings");
            ok = false;
          }
        }
      } else {
        diags.error(at(v), what + ": '" + axis_name + "' must be a string or an array of strings");
        ok = false;
        continue;
      }
      std::vector<std::string> accepted;
      const auto& known = axis_values(*axis);
      for (auto& [value, loc] : values) {
        if (!known.count(value)) {
          std::string message = what + " selects " + axis_name + " = " + quote_short(value) + ", which is not a value of that axis (values: " + join_some(axis->values) + ")";
          auto close = did_you_mean(value, axis->values);
          if (!close.empty()) message += "; did you mean '" + close + "'?";
          diags.error(loc, message);
          ok = false;
        }
        accepted.push_back(value);
      }
      std::sort(accepted.begin(), accepted.end());  // GateSpec::matches searches them
      accepted.erase(std::unique(accepted.begin(), accepted.end()), accepted.end());
      out.emplace_back(axis_name, std::move(accepted));
    }
    if (!ok) return std::nullopt;
    return out;
  }

  // [matrix] scope = { axis = ["backend", ...] }: see Plan::axis_scopes.
  void parse_scopes(const toml::node& node) {
    auto* t = node.as_table();
    if (!t) {
      diags.error(at(node), "matrix.scope must be a table of axis = [backends], e.g. scope = { guest_kernel = [\"kvm\"] }");
      return;
    }
    const Axis* backends = find_axis("backend");
    for (auto&& [k, v] : *t) {
      std::string name(k.str());
      const Location where = location_of(k.source(), file);
      const Axis* axis = find_axis(name);
      if (!axis) {
        std::string message = "matrix.scope names axis " + quote_short(name) + ", which the matrix does not have";
        auto close = did_you_mean(name, axis_names());
        message += close.empty() ? " (axes: " + join_some(axis_names()) + ")" : "; did you mean '" + close + "'?";
        diags.error(where, message);
        continue;
      }
      if (name == "host" || std::find(kBuiltinAxes.begin(), kBuiltinAxes.end(), name) != kBuiltinAxes.end()) {
        diags.error(where, "matrix.scope cannot scope the '" + name + "' axis: every cell has one");
        continue;
      }
      auto* arr = v.as_array();
      if (!arr) {
        diags.error(at(v), "matrix.scope." + name + " must be an array of backend names, e.g. [\"kvm\"]");
        continue;
      }
      std::vector<std::string> names;
      for (auto&& item : *arr) {
        auto str = item.as_string();
        if (!str) {
          diags.error(at(item), "matrix.scope." + name + ": values must be strings (backend names)");
          continue;
        }
        const std::string value = str->get();
        if (backends && std::find(backends->values.begin(), backends->values.end(), value) == backends->values.end()) {
          std::string message = "matrix.scope." + name + " names backend " + quote_short(value) + ", which is not a value of matrix.backend (values: " +
                                join_some(backends->values) + ")";
          auto close = did_you_mean(value, backends->values);
          if (!close.empty()) message += "; did you mean '" + close + "'?";
          diags.error(at(item), message);
          continue;
        }
        names.push_back(value);
      }
      plan.axis_scopes[name] = std::move(names);
    }
  }

  // guest_kernel belongs to guests: bare metal (the host plugin) has none.
  void default_scopes() {
    const Axis* backends = find_axis("backend");
    if (!backends || !find_axis("guest_kernel") || plan.axis_scopes.count("guest_kernel")) return;
    std::vector<std::string> guests;
    for (const auto& b : backends->values) {
      auto it = plan.backends.find(b);
      if ((it == plan.backends.end() ? b : it->second.plugin) != "host") guests.push_back(b);
    }
    if (guests.size() != backends->values.size()) plan.axis_scopes["guest_kernel"] = std::move(guests);
  }

  void parse_excludes(const toml::node& node) {
    auto* arr = node.as_array();
    if (!arr) {
      diags.error(at(node), "matrix.exclude must be an array of tables, e.g. exclude = [{ workload = \"none\", period = \"50us\" }]");
      return;
    }
    if (arr->size() > plan_limits::kExcludes) {
      diags.error(at(node), "matrix.exclude has " + with_thousands(arr->size()) + " entries: at most " +
                                with_thousands(plan_limits::kExcludes) + " are allowed (an entry may list several values per axis)");
      return;
    }
    for (auto&& item : *arr)
      if (auto sel = parse_selector(item, "matrix.exclude entry")) plan.excludes.push_back(std::move(*sel));
  }

  // A statistic's name: max, mean, min (gates only), pNN, rl<duration>.
  void parse_stat(Settings& s, const std::string& stat, const std::string& where, bool min_allowed, double& quantile,
                  double& horizon_s) {
    if (stat == "max" || stat == "mean" || (min_allowed && stat == "min")) {
    } else if (stat.size() > 1 && stat[0] == 'p' && stat[1] >= '0' && stat[1] <= '9') {
      std::string why;
      if (auto q = parse_percentile(stat, &why)) quantile = *q;
      else s.error("stat", "stat " + quote_short(stat) + " in " + where + " is not a percentile: " + why);
    } else if (stat.size() > 2 && stat.rfind("rl", 0) == 0) {
      // A return level: rl<duration>, e.g. rl1h, rl24h.
      std::string why;
      auto horizon = parse_duration(stat.substr(2), &why);
      if (!horizon || horizon->count() <= 0)
        s.error("stat", "stat " + quote_short(stat) + " in " + where +
                            " is not a return level: write rl and a duration, e.g. rl1h or rl24h" + (why.empty() ? "" : ": " + why));
      else
        horizon_s = std::chrono::duration<double>(*horizon).count();
    } else {
      std::string message = "stat " + quote_short(stat) + " in " + where + " must be max, " + (min_allowed ? "min, " : "") +
                            "mean, a percentile like p99 or p99.9, or a return level like rl1h";
      if (!min_allowed && stat == "min") message += " (a claim compares the tails and bodies of cells, whose minimum has no interval)";
      auto close = did_you_mean(stat, min_allowed ? std::vector<std::string>{"max", "min", "mean", "p50", "p90", "p99"}
                                                  : std::vector<std::string>{"max", "mean", "p50", "p90", "p99"});
      if (!close.empty()) message += "; did you mean '" + close + "'?";
      s.error("stat", message);
    }
  }

  void parse_confidence(const toml::table* t, Settings& s, const std::string& where, double& confidence) {
    s.allow({"confidence"});
    if (const toml::node* c = t ? t->get("confidence") : nullptr) {
      auto v = c->value<double>();
      if (!v || !(*v > 0 && *v < 1) || !c->is_floating_point())
        s.error("confidence", "confidence in " + where + " must be a number between 0 and 1 (exclusive), e.g. 0.99");
      else
        confidence = *v;
    }
  }

  // The [[what]] tables of `node` (an array of tables, at most `limit`);
  // nullptr after saying what is wrong at `where`.
  const toml::array* tables_of(const toml::node& node, const Location& where, const std::string& what, const std::string& things,
                               std::size_t limit, const std::string& note = "") {
    auto* arr = node.as_array();
    if (!arr || !arr->is_array_of_tables()) {
      diags.error(where, things + " are written as " + what + " tables (an array of tables)");
      return nullptr;
    }
    if (arr->size() > limit) {
      diags.error(where, "the plan has " + with_thousands(arr->size()) + " " + what + " tables: at most " + with_thousands(limit) +
                             " are allowed" + note);
      return nullptr;
    }
    return arr;
  }

  void parse_gates() {
    auto* node = root->get("gate");
    if (!node) return;
    auto* arr = tables_of(*node, at_key(*root, "gate"), "[[gate]]", "gates", plan_limits::kGates, " (one gate can match many cells)");
    if (!arr) return;
    const std::uint64_t cells = matrix_cells(plan);
    if (cells <= plan_limits::kCells && cells * arr->size() > plan_limits::kGateChecks) {
      diags.error(at_key(*root, "gate"), with_thousands(arr->size()) + " gates over " + with_thousands(cells) + " cells are " +
                                             with_thousands(cells * arr->size()) + " gate checks: at most " +
                                             with_thousands(plan_limits::kGateChecks) + " are allowed (each is a verdict in result.json and a JUnit test case)");
      return;
    }
    std::set<std::string> names;
    int index = 0;
    for (auto&& item : *arr) {
      ++index;
      auto* t = item.as_table();
      auto s = settings(t, "[[gate]] #" + std::to_string(index));
      GateSpec g;
      g.location = at(*t);
      if (t && t->contains("lint")) {
        // A lint gate: the backend's RT lint findings, nothing measured.
        g.lint = s.choice("lint", "error", {"error", "warning"});
        g.stat = "lint";
        g.retest = 0;  // a domain's XML does not change when measured again
        for (const char* key : {"stat", "bound", "regression", "series", "retest"})
          if (s.has(key)) {
            s.allow({key});
            s.error(key, std::string("a lint gate has no ") + key + ": it fails on the backend's lint findings");
          }
        g.name = s.string("name", "lint<" + g.lint);
        s.allow({"match"});
        if (t->contains("match"))
          if (auto sel = parse_selector(*t->get("match"), "gate '" + g.name + "': match")) g.match = *sel;
        if (!names.insert(g.name).second) s.error("name", "two gates are named '" + g.name + "': gate names must be unique");
        s.string("description", "");
        s.finish();
        plan.gates.push_back(std::move(g));
        continue;
      }
      g.stat = s.string("stat", "max");
      parse_stat(s, g.stat, "[[gate]] #" + std::to_string(index), true, g.quantile, g.horizon_s);
      s.allow({"match", "regression", "confidence"});
      parse_confidence(t, s, "[[gate]] #" + std::to_string(index), g.confidence);
      if (t && t->contains("regression")) g.regression = parse_regression(*t->get("regression"), "[[gate]] #" + std::to_string(index));
      if (g.regression && s.has("bound")) {
        s.allow({"bound"});
        s.error("bound", "a gate has a bound or a regression, not both: write two [[gate]] tables");
      } else if (!g.regression && !s.has("bound") && !(t && t->contains("regression")))
        s.error("", "a gate needs a bound, e.g. bound = \"200us\"");
      if (!g.regression)
        g.bound = s.duration("bound", std::chrono::nanoseconds(0), std::chrono::nanoseconds(1), std::chrono::hours(1));
      g.series = s.string("series", "");
      if (t && t->contains("series")) g.series_location = at(*t->get("series"));
      if (g.regression && !g.series.empty())
        s.error("series", "regression gates compare the default series only: drop series, or use a bound");
      if (g.regression && g.horizon_s > 0)
        s.error("stat", "regression gates compare max, min, mean or a percentile: a return level (" + g.stat + ") takes a bound");
      g.name = s.string("name", (g.series.empty() ? "" : g.series + ":") +
                                    (g.regression ? g.stat + "<=baseline+" + g.regression->tolerance.text
                                                  : g.stat + "<=" + format_duration(g.bound)));
      if (t && t->contains("match")) {
        if (auto sel = parse_selector(*t->get("match"), "gate '" + g.name + "': match")) g.match = *sel;
      }
      if (!names.insert(g.name).second) s.error("name", "two gates are named '" + g.name + "': gate names must be unique");
      if (s.has("retest")) g.retest = static_cast<int>(s.integer("retest", 0, 0, 10));
      s.string("description", "");
      s.finish();
      plan.gates.push_back(std::move(g));
    }
  }

  // regression = { baseline = "results/last-good", tolerance = "10%" }
  std::shared_ptr<const RegressionSpec> parse_regression(const toml::node& node, const std::string& gate) {
    auto* t = node.as_table();
    if (!t) {
      diags.error(at(node), "regression in " + gate + " must be a table, e.g. regression = { baseline = \"results/last-good\", tolerance = \"10%\" }");
      return nullptr;
    }
    auto s = settings(t, "regression of " + gate);
    std::string baseline = s.string("baseline", "");
    if (baseline.empty())
      s.error(s.has("baseline") ? "baseline" : "", "regression needs a baseline: a run directory, or a results directory (its complete runs of this plan), e.g. baseline = \"results/last-good\"");
    std::string why;
    auto tolerance = parse_tolerance(s.string("tolerance", "10%"), &why);
    if (!tolerance) s.error("tolerance", why);
    const auto last = static_cast<std::size_t>(s.integer("last", 0, 0, 100000));
    s.finish();
    if (baseline.empty() || !tolerance) return nullptr;
    return std::make_shared<const RegressionSpec>(RegressionSpec{baseline_run(baseline), *tolerance, last});
  }

  // [[expect]]: a finding as a check (docs/plan-format.md).
  void parse_expects() {
    auto* node = root->get("expect");
    if (!node) return;
    auto* arr = tables_of(*node, at_key(*root, "expect"), "[[expect]]", "claims", plan_limits::kExpects);
    if (!arr) return;
    std::set<std::string> names;
    int index = 0;
    for (auto&& item : *arr) {
      ++index;
      auto* t = item.as_table();
      const std::string where = "[[expect]] #" + std::to_string(index);
      auto s = settings(t, where);
      ExpectSpec e;
      e.location = at(*t);
      e.stat = s.string("stat", "max");
      parse_stat(s, e.stat, where, false, e.quantile, e.horizon_s);
      parse_confidence(t, s, where, e.confidence);
      e.gate = s.boolean("gate", false);
      e.description = s.string("description", "");
      s.allow({"smaller", "larger"});
      bool sides = true;
      for (const char* key : {"smaller", "larger"}) {
        if (!t->contains(key)) {
          s.error("", std::string("needs ") + key + " = { axis = \"value\" }: the claim is that the stat of the cells " +
                          "'smaller' selects is below that of the cells 'larger' selects");
          sides = false;
          continue;
        }
        const toml::node& side = *t->get(key);
        auto sel = parse_selector(side, where + ": " + key);
        if (sel && sel->empty()) {
          diags.error(at(side), where + ": " + key + " selects every cell: name at least one axis, e.g. { guest_kernel = \"rt\" }");
          sel.reset();
        }
        if (!sel) { sides = false; continue; }
        (std::string_view(key) == "smaller" ? e.smaller : e.larger) = std::move(*sel);
        (std::string_view(key) == "smaller" ? e.smaller_location : e.larger_location) = at(side);
      }
      std::string fallback = sides ? e.stat + ": " + selector_text(e.smaller) + " < " + selector_text(e.larger) : where;
      e.name = s.string("name", fallback);
      if (!names.insert(e.name).second) s.error("name", "two claims are named " + quote_short(e.name) + ": [[expect]] names must be unique");
      s.finish();
      plan.expects.push_back(std::move(e));
    }
  }

  // [report]: what the HTML report draws beyond its defaults (docs/plan-format.md).
  void parse_report() {
    auto* node = root->get("report");
    if (!node) return;
    auto* t = node->as_table();
    if (!t) {
      diags.error(at_key(*root, "report"), "'report' must be a table: [report] or [[report.figure]]");
      return;
    }
    plan.report.declared = true;
    auto s = settings(t, "[report]");
    plan.report.default_figures = s.boolean("default_figures", true);
    s.allow({"figure"});
    s.finish();
    auto* figures = t->get("figure");
    if (!figures) return;
    auto* arr = tables_of(*figures, at(*figures), "[[report.figure]]", "figures", plan_limits::kFigures);
    if (!arr) return;
    int index = 0;
    for (auto&& item : *arr) {
      ++index;
      auto* ft = item.as_table();
      const std::string where = "[[report.figure]] #" + std::to_string(index);
      auto fs = settings(ft, where);
      FigureSpec f;
      f.location = at(*ft);
      f.draw = fs.choice("kind", "both", {"both", "ccdf", "histogram"});
      fs.allow({"cells"});
      bool selected = false;
      if (!ft->contains("cells")) {
        fs.error("", "needs cells = { axis = \"value\" }: the cells the figure overlays");
      } else if (auto sel = parse_selector(*ft->get("cells"), where + ": cells")) {
        f.cells = std::move(*sel);
        selected = true;
      }
      f.title = fs.string("title", selected ? selector_text(f.cells) : "");
      fs.finish();
      plan.report.figures.push_back(std::move(f));
    }
  }

  void parse_export() {
    auto* node = root->get("export");
    if (!node) return;
    auto* t = node->as_table();
    if (!t) {
      diags.error(at_key(*root, "export"), "'export' must be a table: [export.prometheus]");
      return;
    }
    auto s = settings(t, "[export]");
    s.allow({"prometheus"});
    s.finish();
    auto* prom = (*t)["prometheus"].as_table();
    if (t->contains("prometheus") && !prom) diags.error(at_key(*t, "prometheus"), "'prometheus' must be a table: [export.prometheus]");
    if (!prom) return;
    auto p = settings(prom, "[export.prometheus]");
    auto& e = plan.prometheus;
    e.push = p.string("push", "");
    if (!e.push.empty() && e.push.rfind("http://", 0) != 0 && e.push.rfind("https://", 0) != 0)
      p.error("push", "'push' in [export.prometheus] must be a Pushgateway URL like \"http://127.0.0.1:9091\" (got '" + e.push + "')");
    e.push_timeout = p.duration("push_timeout", e.push_timeout, std::chrono::seconds(1), std::chrono::hours(1));
    e.textfile = p.string("textfile", "");
    e.job = p.string("job", e.job);
    if (!valid_name(e.job)) p.error("job", "'job' may only contain letters, digits, '-', '_' and '.'");
    p.finish();
  }

  // `cells`: the expanded matrix, or null when it is incomplete (then the
  // placements, which depend on it, are not checked).
  void validate_plugins(PluginRegistry& registry, const std::vector<Cell>* cells) {
    // The (backend, workload) pairs some cell combines: a placement only
    // matters where a workload meets that backend.
    std::set<std::pair<std::string, std::string>> combined;
    if (cells)
      for (const auto& cell : *cells) combined.emplace(cell.backend, cell.workload);
    std::map<std::string, std::vector<std::string>> probe_series;  // probe instance -> its series
    for (auto* instances : {&plan.backends, &plan.workloads, &plan.probes}) {
      for (auto& [name, instance] : *instances) {
        std::unique_ptr<Plugin> plugin = create_plugin(instance, registry, diags);
        if (!plugin) continue;
        if (auto* probe = dynamic_cast<Probe*>(plugin.get()); probe && instance.kind == "probe")
          probe_series[name] = probe->series();
        if (instance.kind == "backend" && cells) {
          // Placements of the workloads this backend is combined with.
          auto* backend = dynamic_cast<Backend*>(plugin.get());
          if (!backend) continue;
          auto placements = backend->placements();
          for (const auto& [wname, workload] : plan.workloads) {
            if (std::find(placements.begin(), placements.end(), workload.where) == placements.end()) {
              if (!combined.count({name, wname})) continue;
              std::string message = "[workload." + wname + "]: where = \"" + workload.where + "\" is not a placement of backend '" +
                                    name + "' (plugin " + instance.plugin + "; it offers: " + join(placements, ", ") + ")";
              auto close = did_you_mean(workload.where, placements);
              if (!close.empty()) message += "; did you mean '" + close + "'?";
              Location loc = workload.location;
              auto* wt = static_cast<const toml::table*>(workload.table.get());
              if (auto* w = wt->get("where")) loc = at(*w);
              diags.error(loc, message);
            }
          }
        }
      }
    }
    // A gate's series must be one that the probe of every cell it matches records.
    for (const auto& gate : plan.gates) {
      if (gate.series.empty() || !cells) continue;
      for (const auto& cell : *cells) {
        auto it = probe_series.find(cell.probe);
        if (!gate.matches(cell.spec) || it == probe_series.end()) continue;
        if (std::find(it->second.begin(), it->second.end(), gate.series) != it->second.end()) continue;
        std::string message = "gate '" + gate.name + "': series '" + gate.series + "' is not recorded by probe '" +
                              cell.probe + "' (cell " + cell.spec.id + "; it records: " + join(it->second, ", ") +
                              "): narrow the gate with match = { probe = [...] }";
        auto close = did_you_mean(gate.series, it->second);
        if (!close.empty()) message += "; did you mean '" + close + "'?";
        diags.error(gate.series_location, message);
        break;
      }
    }
  }
};

}  // namespace

namespace {

// Each side of a claim selects cells of the matrix, and the two sides form
// pairs: a claim that could never be judged is a mistake in the plan; so is
// a figure of no cell.
void check_expects(const Plan& plan, const std::vector<Cell>& cells, Diagnostics& diags) {
  std::vector<const ExpectAxes*> axes;
  for (const auto& c : cells) axes.push_back(&c.spec.axes);
  std::uint64_t total = 0;
  for (const auto& e : plan.expects) {
    bool sides = true;
    for (const auto* side : {&e.smaller, &e.larger})
      if (std::none_of(cells.begin(), cells.end(), [&](const Cell& c) { return selector_matches(*side, c.spec.axes); })) {
        diags.error(side == &e.smaller ? e.smaller_location : e.larger_location,
                    "claim " + quote_short(e.name) + ": " + (side == &e.smaller ? "smaller" : "larger") + " = { " +
                        selector_text(*side) + " } matches no cell of the matrix (after matrix.exclude and scopes)");
        sides = false;
      }
    if (!sides) continue;
    std::uint64_t count = 0;
    expect_pairs(e, axes, plan_limits::kExpectPairs, &count);
    total += count;
    if (count == 0)
      diags.error(e.location, "claim " + quote_short(e.name) + ": no cell that smaller selects has a partner that larger selects with "
                                  "the same values of the other axes: name the axes that differ in both selectors");
  }
  for (const auto& f : plan.report.figures)
    if (std::none_of(cells.begin(), cells.end(), [&](const Cell& c) { return selector_matches(f.cells, c.spec.axes); }))
      diags.error(f.location, "[[report.figure]] " + quote_short(f.title) + ": cells = { " + selector_text(f.cells) +
                                  " } matches no cell of the matrix (after matrix.exclude and scopes)");
  if (total > plan_limits::kExpectPairs)
    diags.error(Location{plan.path.string(), 0, 0}, "the [[expect]] tables compare " + with_thousands(total) + " pairs of cells: at most " +
                                                        with_thousands(plan_limits::kExpectPairs) + " are allowed");
}

}  // namespace

Plan load_plan(const std::filesystem::path& path, Diagnostics& diags, PluginRegistry* registry) {
  Plan plan;
  plan.path = path;
  std::string file = path.string();
  auto text = read_plan_file(file, diags);
  if (!text) return plan;
  plan.text = std::move(*text);
  plan.sha256 = sha256_hex(plan.text);
  plan.name = path.stem().string();
  if (!check_plan_text(plan.text, file, diags)) return plan;

  std::shared_ptr<toml::table> root;
  try {
    root = std::make_shared<toml::table>(toml::parse(plan.text, file));
  } catch (const toml::parse_error& e) {
    diags.error(location_of(e.source(), file), "TOML syntax error: " + std::string(e.description()));
    return plan;
  }
  plan.document = root;
  if (!check_plan_tree(*root, file, diags)) return plan;
  if (root->empty()) {
    diags.error(Location{file, 0, 0}, "the plan is empty: declare at least a backend and a probe, e.g. [backend.host] and "
                                      "[probe.cyclictest] with plugin = \"cyclic\" (see plans/quickstart.toml, docs/plan-format.md)");
    return plan;
  }
  PlanParser p{plan, diags, file, root, false, {}, {}, {}};
  auto top = p.settings(root.get(), "the plan's top level");
  top.allow({"plan", "timeouts", "hosts", "matrix", "backend", "workload", "probe", "gate", "expect", "report", "export"});
  top.finish();
  p.parse_plan_table();
  p.parse_timeouts();
  p.parse_hosts();
  p.parse_instances();
  p.parse_matrix();
  p.parse_gates();
  p.parse_expects();
  p.parse_report();
  p.parse_export();
  std::vector<Cell> cells;
  if (p.matrix_complete) cells = expand(plan);
  // Plugins validate their own tables even when the rest of the plan has
  // errors: one pass reports every error.
  if (registry) p.validate_plugins(*registry, p.matrix_complete ? &cells : nullptr);
  if (!diags.empty()) return plan;
  if (cells.empty()) diags.error(Location{file, 0, 0}, "the matrix has no cells left after matrix.exclude");
  for (auto& g : plan.gates)
    g.cells_matched = static_cast<std::size_t>(
        std::count_if(cells.begin(), cells.end(), [&](const Cell& c) { return g.matches(c.spec); }));
  check_expects(plan, cells, diags);
  std::unordered_map<std::string, int> ids;
  for (const auto& c : cells)
    if (ids[c.spec.id]++ == 1)
      diags.error(Location{file, 0, 0}, "two cells have the id '" + c.spec.id + "': make the matrix values differ in letters or digits");
  return plan;
}

std::uint64_t matrix_cells(const Plan& plan) {
  if (plan.axes.empty()) return 0;
  for (const auto& a : plan.axes)
    if (a.values.empty()) return 0;
  std::uint64_t cells = 1;
  for (const auto& a : plan.axes) {
    if (cells > UINT64_MAX / a.values.size()) return UINT64_MAX;
    cells *= a.values.size();
  }
  return cells;
}

std::vector<Cell> expand(const Plan& plan) {
  std::vector<Cell> cells;
  const std::uint64_t total = matrix_cells(plan);
  if (total == 0 || total > plan_limits::kCells) return cells;
  auto axis_index = [&](std::string_view name) -> std::optional<std::size_t> {
    for (std::size_t i = 0; i < plan.axes.size(); ++i)
      if (plan.axes[i].name == name) return i;
    return std::nullopt;
  };
  const auto backend = axis_index("backend"), workload = axis_index("workload"), probe = axis_index("probe");
  if (!backend || !workload || !probe) return cells;

  // Per axis, computed once: the id part and the period of each value.
  std::vector<std::vector<std::string>> id_parts(plan.axes.size());
  std::vector<std::vector<std::optional<nanoseconds>>> periods(plan.axes.size());
  for (std::size_t i = 0; i < plan.axes.size(); ++i)
    for (const auto& v : plan.axes[i].values) {
      id_parts[i].push_back(sanitize(v));
      periods[i].push_back(plan.axes[i].name == "period" ? parse_duration(v) : std::nullopt);
    }
  // Excludes as masks over value positions: a cell is then checked with a few
  // lookups. An entry naming an axis the matrix lacks excludes nothing.
  using Mask = std::vector<std::pair<std::size_t, std::vector<bool>>>;
  std::vector<Mask> excludes;
  for (const auto& selector : plan.excludes) {
    Mask mask;
    bool possible = true;
    for (const auto& [axis, values] : selector) {
      const auto i = axis_index(axis);
      if (!i) {
        possible = false;
        break;
      }
      const std::set<std::string_view> chosen(values.begin(), values.end());
      std::vector<bool> hit(plan.axes[*i].values.size());
      for (std::size_t k = 0; k < hit.size(); ++k) hit[k] = chosen.count(plan.axes[*i].values[k]) > 0;
      mask.emplace_back(*i, std::move(hit));
    }
    if (possible) excludes.push_back(std::move(mask));
  }

  // Scopes as, per axis, the backend positions it applies to (empty: all).
  std::vector<std::vector<bool>> in_scope(plan.axes.size());
  for (std::size_t i = 0; i < plan.axes.size(); ++i) {
    auto scope = plan.axis_scopes.find(plan.axes[i].name);
    if (scope == plan.axis_scopes.end()) continue;
    const auto& backends = plan.axes[*backend].values;
    in_scope[i].resize(backends.size());
    for (std::size_t k = 0; k < backends.size(); ++k)
      in_scope[i][k] = std::find(scope->second.begin(), scope->second.end(), backends[k]) != scope->second.end();
  }
  auto has_axis = [&](std::size_t i, const std::vector<std::size_t>& at) { return in_scope[i].empty() || in_scope[i][at[*backend]]; };

  std::vector<std::size_t> pos(plan.axes.size(), 0);
  cells.reserve(static_cast<std::size_t>(total));
  std::unordered_set<std::string> ids;  // cells that differ only in out-of-scope axes are one
  int index = 0;
  while (true) {
    bool excluded = false;
    for (const auto& mask : excludes) {
      bool all = true;
      // A selector naming an axis the cell does not have does not match it.
      for (const auto& [axis, hit] : mask) all = all && has_axis(axis, pos) && hit[pos[axis]];
      if (all) {
        excluded = true;
        break;
      }
    }
    if (!excluded) {
      Cell c;
      c.index = ++index;
      CellSpec& spec = c.spec;
      spec.plan_name = plan.name;
      // The host axis pins a cell; otherwise placement (hosts.cpp) picks one
      // when the plan has several hosts.
      spec.host_name = plan.hosts.size() == 1 ? plan.hosts.front().name : "";
      spec.duration = plan.duration;
      spec.period = plan.period;
      spec.cpus = plan.cpus;
      for (std::size_t i = 0; i < plan.axes.size(); ++i) {
        if (!has_axis(i, pos)) continue;
        spec.axes.emplace_back(plan.axes[i].name, plan.axes[i].values[pos[i]]);
        spec.id += (spec.id.empty() ? "" : "-") + id_parts[i][pos[i]];
        if (periods[i][pos[i]]) spec.period = *periods[i][pos[i]];
        if (plan.axes[i].name == "host") spec.host_name = plan.axes[i].values[pos[i]];
      }
      if (ids.insert(spec.id).second) {
        c.backend = plan.axes[*backend].values[pos[*backend]];
        c.workload = plan.axes[*workload].values[pos[*workload]];
        c.probe = plan.axes[*probe].values[pos[*probe]];
        cells.push_back(std::move(c));
      } else {
        --index;
      }
    }
    // Odometer: the last axis varies fastest.
    std::size_t i = plan.axes.size();
    while (i > 0) {
      --i;
      if (++pos[i] < plan.axes[i].values.size()) break;
      pos[i] = 0;
      if (i == 0) return cells;
    }
  }
}

std::optional<double> parse_percentile(std::string_view stat, std::string* why) {
  auto fail = [&](const char* message) -> std::optional<double> {
    if (why) *why = message;
    return std::nullopt;
  };
  const char* kForm = "write p50, p99, p99.9 ... (0 < p < 100)";
  if (stat.size() < 2 || stat.size() > 24 || stat[0] != 'p') return fail(kForm);
  const std::string_view number = stat.substr(1);
  std::size_t dots = 0;
  for (char c : number) {
    if (c == '.') ++dots;
    else if (c < '0' || c > '9') return fail(kForm);
  }
  if (dots > 1 || number.front() == '.' || number.back() == '.') return fail(kForm);
  double percent = 0;
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), percent, std::chars_format::fixed);
  if (ec != std::errc() || end != number.data() + number.size()) return fail(kForm);
  if (!(percent > 0) || !(percent < 100)) return fail("a percentile is above p0 and below p100 (p100 is the max: write stat = \"max\")");
  return percent / 100.0;
}

}  // namespace vmlat
