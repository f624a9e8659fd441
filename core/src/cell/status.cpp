#include "cell/status.hpp"

namespace vmlat {

namespace {
constexpr std::pair<CellStatus, const char*> kNames[] = {
    {CellStatus::pending, "pending"},         {CellStatus::running, "running"},
    {CellStatus::measured, "measured"},       {CellStatus::infra_error, "infra-error"},
    {CellStatus::interrupted, "interrupted"}, {CellStatus::skipped, "skipped"},
    {CellStatus::not_run, "not-run"},
};
}  // namespace

const char* status_name(CellStatus status) {
  for (const auto& [s, name] : kNames)
    if (s == status) return name;
  return "?";
}

std::optional<CellStatus> parse_status(std::string_view name) {
  for (const auto& [s, word] : kNames)
    if (name == word) return s;
  return std::nullopt;
}

}  // namespace vmlat
