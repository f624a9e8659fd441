// A plugin instance's settings: its table from the plan, with typed getters
// that report errors as "file:line:col: message".
//
// Every getter registers its key as known. After configure() the core reports
// every key of the table that no getter asked for as unknown, with a "did you
// mean" suggestion from the known keys. A getter that finds a bad value records
// the error and returns the default, so that one validation pass reports every
// error of the plan, not just the first.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vmlat {

struct Location {
  std::string file;
  int line = 0;
  int column = 0;
  std::string str() const;  // "plan.toml:12:9" (or "plan.toml" without a line)
};

struct Diagnostic {
  Location where;
  std::string message;
  std::string str() const { return where.str() + ": " + message; }
};

// Collects diagnostics of one validation pass: the first 100, then one
// "too many errors" entry; later ones are dropped (a hostile file cannot make
// the list, or the time spent on it, grow without bound).
class Diagnostics {
 public:
  void error(Location where, std::string message);
  const std::vector<Diagnostic>& all() const { return items_; }
  bool empty() const { return items_.empty(); }
  std::string str() const;  // one per line

 private:
  std::vector<Diagnostic> items_;
};

class Settings {
 public:
  struct Impl;
  Settings(std::shared_ptr<Impl> impl);
  ~Settings();

  // "[probe.cyclictest]": for messages.
  const std::string& section() const;

  bool has(std::string_view key) const;
  std::string string(std::string_view key, std::string default_value);
  // One of `allowed`; anything else is an error listing them.
  std::string choice(std::string_view key, std::string default_value,
                     const std::vector<std::string>& allowed);
  std::int64_t integer(std::string_view key, std::int64_t default_value, std::int64_t min,
                       std::int64_t max);
  bool boolean(std::string_view key, bool default_value);
  // "50us", "1ms", ... (see units.hpp), within [min, max].
  std::chrono::nanoseconds duration(std::string_view key, std::chrono::nanoseconds default_value,
                                    std::chrono::nanoseconds min, std::chrono::nanoseconds max);
  std::vector<std::string> string_list(std::string_view key, std::vector<std::string> default_value);
  // [0, 1, 3] or "0-3,5" or "all" (returned as an empty vector).
  std::vector<int> cpu_list(std::string_view key, std::vector<int> default_value);
  // A string -> string table, e.g. extra environment: { FOO = "bar" }.
  std::vector<std::pair<std::string, std::string>> string_map(std::string_view key);

  // Declares keys valid in this table without reading them (e.g. keys that
  // only matter for another engine).
  void allow(std::initializer_list<std::string_view> keys);
  // A semantic error about `key` (or the table itself if key is empty).
  void error(std::string_view key, std::string message);
  Location location(std::string_view key) const;

  // Reports unknown keys (with "did you mean"). Called by the core.
  void finish();
  bool ok() const;

 private:
  std::shared_ptr<Impl> impl_;
};

// Closest candidate within a small edit distance, or empty.
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace vmlat
