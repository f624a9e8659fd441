#!/usr/bin/env bash
# ci/templates/vmlat-ci-gate for real: vmlat run, report and compare on short
# host cells of this machine, one state directory across the cases:
#   a first run that passes becomes last-good (no baseline yet);
#   a second run is compared with it, passes, and becomes last-good;
#   a failed gate exits 1 (gate-failed) and leaves last-good alone;
#   an infrastructure error exits 3 (infra-error), not 1, and leaves last-good alone;
#   a missing plan exits 2.
# Needs root (SCHED_FIFO); exits 77 (skipped) without it, or when this vmlat
# has no report/compare commands.
# Usage: ci_gate_test.sh --vmlat PATH --source-dir DIR
set -euo pipefail
vmlat="" source_dir=""
while (($#)); do
  case "$1" in
    --vmlat) vmlat=$2; shift 2 ;;
    --source-dir) source_dir=$2; shift 2 ;;
    *) echo "ci_gate_test: unknown argument $1" >&2; exit 2 ;;
  esac
done
gate="$source_dir/ci/templates/vmlat-ci-gate"
[[ $(id -u) == 0 ]] || { echo "SKIPPED: needs root (SCHED_FIFO probes)"; exit 77; }
for command in report compare; do
  "$vmlat" help "$command" >/dev/null 2>&1 || { echo "SKIPPED: $vmlat has no '$command' command"; exit 77; }
done
command -v jq >/dev/null || { echo "SKIPPED: jq not installed"; exit 77; }

work=$(mktemp -d /tmp/vmlat-ci-gate-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

plan() {  # plan NAME BOUND [PROBE TABLE LINES...]
  local name=$1 bound=$2; shift 2
  cat >"$name.toml" <<PLAN
[plan]
name = "ci-gate"
duration = "1s"
period = "1ms"
cpus = "all"

[matrix]
backend = ["host"]
workload = ["none"]
probe = ["p"]

[backend.host]

[probe.p]
plugin = "cyclic"
$(printf '%s\n' "$@")

[[gate]]
name = "worst-case"
stat = "max"
bound = "$bound"
PLAN
}
plan good 10s 'engine = "native"'
plan strict 1ns 'engine = "native"'
# cyclictest refuses an unknown option at start: the cell cannot be measured.
plan broken 10s 'engine = "cyclictest"' 'extra_args = ["--no-such-option"]'

gate_run() {  # gate_run EXPECTED_EXIT ARTIFACTS PLAN [args...]
  local want=$1 artifacts=$2; shift 2
  set +e
  "$gate" "$@" --vmlat "$vmlat" --state "$work/state" --results "$work/results" --artifacts "$artifacts" \
    --summary "$work/step-summary.md" >"$artifacts.log" 2>&1
  local rc=$?
  set -e
  [[ $rc == "$want" ]] || { cat "$artifacts.log"; fail "vmlat-ci-gate $* exited $rc, expected $want"; }
}
verdict() { sed -n 's/^VMLAT_VERDICT=//p' "$1/verdict.env"; }
last_good() { basename "$(readlink -f "$work/state/last-good")"; }

echo "== first run: passes, becomes last-good"
gate_run 0 a1 good.toml
[[ $(verdict a1) == pass ]] || fail "verdict $(verdict a1), expected pass"
for f in junit.xml report.html summary.md job-summary.md verdict.env run/run.json; do
  [[ -s a1/$f ]] || fail "a1/$f missing or empty"
done
[[ ! -e a1/compare.md ]] || fail "compared although there was no baseline"
grep -q "no baseline yet" a1/job-summary.md || fail "the summary does not say there was no baseline"
[[ $(last_good) == "$(basename "$(sed -n 's/^VMLAT_RUN_DIR=//p' a1/verdict.env)")" ]] || fail "last-good is not the first run"
grep -q '<testcase' a1/junit.xml || fail "no JUnit testcase"

echo "== second run: compared with the first, passes, becomes last-good"
sleep 1  # run ids have a one-second resolution
gate_run 0 a2 good.toml --tolerance 100000%
[[ $(verdict a2) == pass ]] || fail "verdict $(verdict a2), expected pass"
[[ -s a2/compare.md ]] || fail "no comparison with the last good run"
second=$(basename "$(sed -n 's/^VMLAT_RUN_DIR=//p' a2/verdict.env)")
[[ $(last_good) == "$second" ]] || fail "last-good is not the second run"
[[ $(sed -n 's/^VMLAT_BASELINE=//p' a2/verdict.env) == "$work/state/runs/$(basename "$(sed -n 's/^VMLAT_RUN_DIR=//p' a1/verdict.env)")" ]] ||
  fail "the baseline of the second run was not the first run"

# A run that must not become the baseline: its verdict and its headline.
expect_kept_out() {  # ARTIFACTS VERDICT HEADLINE
  [[ $(verdict "$1") == "$2" ]] || fail "verdict $(verdict "$1"), expected $2"
  [[ $(last_good) == "$second" ]] || fail "a $2 run became last-good"
  grep -q "$3" "$1/job-summary.md" || fail "the summary does not say $3"
}
echo "== a failed gate: exit 1, last-good unchanged"
sleep 1
gate_run 1 b strict.toml
expect_kept_out b gate-failed "FAILED"

echo "== an infrastructure error: exit 3, not a regression, last-good unchanged"
sleep 1
gate_run 3 c broken.toml
expect_kept_out c infra-error "INFRASTRUCTURE ERROR"

echo "== a missing plan: exit 2"
gate_run 2 d no-such-plan.toml

grep -c '^## vmlat nightly gate' "$work/step-summary.md" | grep -qx 4 || fail "--summary did not get four summaries"
echo "ci_gate_test: all checks passed"
