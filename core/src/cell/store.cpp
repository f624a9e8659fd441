#include "cell/store.hpp"

#include <ostream>

#include "gates/evaluate.hpp"
#include "vmlat/atomic_file.hpp"

namespace vmlat {

void store_result(const Plan& plan, const Cell& cell, const std::filesystem::path& cell_dir, CellOutcome& o,
                  FileLogger& cell_log, std::ostream& err) {
  try {
    write_file_atomic(cell_dir / "result.json", dump_json(result_json(o), 2) + "\n");
  } catch (const std::exception& e) {
    const std::string why = std::string("cannot write result.json: ") + e.what();
    err << "vmlat: " << cell.spec.id << ": " << why << "\n";
    cell_log.error(why);
    if (o.status == CellStatus::measured || o.status == CellStatus::skipped) {
      o.status = CellStatus::infra_error;
      o.error = why;
      o.error_phase = "store";
      o.gates = evaluate_gates(plan, cell.spec, o.status, o.error, nullptr);
    }
    o.result_missing = true;
  }
}

}  // namespace vmlat
