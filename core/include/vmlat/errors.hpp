// Error types of the vmlat API. One type per layer; the runner converts them
// into cell statuses and exit codes (see docs/ARCHITECTURE.md).
#pragma once

#include <stdexcept>
#include <string>

namespace vmlat {

// Something outside the plan is wrong: a program is missing, a guest did not
// boot, a process failed. The cell is not measured; the run exits 3.
class InfraError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A plugin or runner phase overran its deadline. Counts as an InfraError.
class PhaseTimeout : public InfraError {
 public:
  using InfraError::InfraError;
};

// The user asked us to stop (SIGINT/SIGTERM). The run writes what it has and
// exits 130.
class Cancelled : public std::runtime_error {
 public:
  Cancelled() : std::runtime_error("interrupted") {}
};

// The plan or a setting is wrong; the message already carries file:line:col.
class PlanError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace vmlat
