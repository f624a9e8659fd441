#!/usr/bin/env python3
"""Plan hosts that are one machine, for real (CTest vmlat_multihost_samehost,
labels hosts;integration; issue 16). Real OpenSSH servers on loopback
(tests/support/sshlab.py) WITHOUT the lab's fake machine identity: every
"host" is honestly this machine, with vmlat's default layout (prefix
/opt/vmlat, work directory /var/lib/vmlat, lock /run/vmlat), which this test
provisions and removes afterwards.

1. two sshd, [hosts.a] and [hosts.b], a 4-cell plan over both, three runs in
   a row (the first provisions both hosts, the others run with
   --no-provision: the defect was in the cells and the cleanup, and Ansible
   takes minutes here): 4/4 measured each time, "one machine" said once, the
   cells one at a time, the remote directories removed;
2. one sshd named twice ("127.0.0.1" and "localhost"), each name with its own
   lock directory: the controller still measures them one at a time;
3. this machine as a local host and again over ssh: refused before anything
   runs (the remote vmlat would wait for the lock this vmlat holds);
4. two controllers whose runs get the same run id, on one host: neither
   removes the other's remote directory.
Latency values are never asserted.

Usage: samehost_it.py --vmlat build/vmlat [--keep]
"""
import argparse
import fcntl
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from sshlab import SshLab  # noqa: E402
from vmlat_it import CHECKS, FAILURES, check, die_with_parent, log  # noqa: E402

PREFIX, WORK_DIR = "/opt/vmlat", "/var/lib/vmlat"
# What provisioning the default layout makes on this machine (ansible/roles/vmlat_common).
MADE_BY_PROVISIONING = [PREFIX, PREFIX + "-releases", WORK_DIR, "/etc/tmpfiles.d/vmlat-lock-run-vmlat.conf"]


def start_vmlat(vmlat, args, cwd):
    return subprocess.Popen([vmlat] + args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=die_with_parent)


def run_vmlat(vmlat, args, cwd, timeout=900):
    """(exit code, stdout, stderr, seconds); a run still going after `timeout` gets SIGINT (exit code None)."""
    t0 = time.time()
    p = start_vmlat(vmlat, args, cwd)
    try:
        out, err = p.communicate(timeout=timeout)
        code = p.returncode
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=180)
        code = None
        err += f"\n(test: still running after {timeout} s, interrupted)"
    return code, out, err, time.time() - t0


def latest(results):
    return os.path.realpath(os.path.join(results, "latest"))


def load(path):
    with open(path) as f:
        return json.load(f)


def plan_text(hosts_toml, host_names, periods=("1ms", "500us"), duration="2s", name="samehost"):
    return f"""[plan]
name = "{name}"
duration = "{duration}"
cpus = [0]

{hosts_toml}
[backend.host]
[probe.native]
plugin = "cyclic"
engine = "native"
[matrix]
period = [{", ".join(f'"{p}"' for p in periods)}]
host = [{", ".join(f'"{h}"' for h in host_names)}]
[[gate]]
name = "loose"
bound = "10s"
"""


def spans(run_dir):
    """[(start, end, host)] of the measured cells (ISO strings sort as times)."""
    out = []
    for path in glob.glob(os.path.join(run_dir, "cells", "*", "result.json")):
        r = load(path)
        t = r.get("timings", {})
        if "started" in t and "finished" in t:
            out.append((t["started"], t["finished"], r["cell"]["host"]))
    return sorted(out)


def one_at_a_time(run_dir):
    s = spans(run_dir)
    return len(s) > 0 and all(s[i][1] <= s[i + 1][0] for i in range(len(s) - 1)), s


def remote_run_dirs(run_id):
    return glob.glob(os.path.join(WORK_DIR, "runs", run_id + "*"))


def check_one_machine_run(code, out, err, took, results, names, cells):
    check(code == 0, f"exit 0 ({took:.1f} s)", out + err)
    check(f"{cells}/{cells} cells measured" in out, f"{cells}/{cells} cells measured", out)
    said = f"hosts {' and '.join(names)} are one machine"
    check(err.count(said) == 1 and "their cells run one at a time" in err, f"said once: '{said} ...'", err)
    run_dir = latest(results)
    if not check(os.path.exists(os.path.join(run_dir, "run.json")), "the run has a run.json"):
        return None
    run = load(os.path.join(run_dir, "run.json"))
    check(all(c["status"] == "measured" for c in run["cells"]) and {c["host"] for c in run["cells"]} == set(names),
          "run.json: every cell measured, on both hosts", json.dumps(run["cells"]))
    for n in names:
        others = [m for m in names if m != n]
        check(run["hosts"][n]["vmlat_host"].get("same_machine_as") == others, f"run.json: {n} is the same machine as {others}",
              json.dumps(run["hosts"][n].get("vmlat_host")))
    ids = {json.dumps(run["hosts"][n].get("identity")) for n in names}
    check(len(ids) == 1 and (run["hosts"][names[0]].get("identity") or {}).get("boot_id"),
          "run.json: one identity (hashed) for both", str(ids))
    machine_id = open("/etc/machine-id").read().strip()
    check(machine_id not in open(os.path.join(run_dir, "run.json")).read(), "run.json never holds the machine-id itself")
    ok, s = one_at_a_time(run_dir)
    check(ok, "the machine measured one cell at a time", json.dumps(s))
    check(remote_run_dirs(run["run_id"]) == [], f"{WORK_DIR}/runs/{run['run_id']} removed", str(remote_run_dirs(run["run_id"])))
    return run


def test_two_sshd_default_layout(vmlat, lab, work):
    log("== issue 16: two sshd on 127.0.0.1, the default layout, hosts a and b, three runs in a row")
    hosts = lab.host_toml(0, "a", [], layout=False) + "\n" + lab.host_toml(1, "b", [], layout=False)
    plan = os.path.join(work, "plan.toml")
    with open(plan, "w") as f:
        f.write(plan_text(hosts, ["a", "b"]))
    for n in range(1, 4):
        log(f"-- run {n}")
        results = os.path.join(work, "results")
        code, out, err, took = run_vmlat(vmlat, ["run", plan, "--results", results] + ([] if n == 1 else ["--no-provision"]),
                                         work)
        run = check_one_machine_run(code, out, err, took, results, ["a", "b"], 4)
        if n == 1:
            for name in ("a", "b"):
                provision_log = os.path.join(latest(results), "hosts", name, "provision.log")
                check(os.path.exists(provision_log) and "failed=0" in open(provision_log).read(),
                      f"{name} provisioned into {PREFIX}")
        summary = (run or {}).get("summary") or {}
        log(f"   run {n}: {summary.get('measured')}/{summary.get('cells')} measured, exit {code}, {took:.1f} s")
    check(lab.leftovers() == [], "nothing left running under either sshd", " ".join(lab.leftovers()))

    code, out, err, _ = run_vmlat(vmlat, ["hosts", plan, "--json"], work)
    listed = json.loads(out) if code == 0 else []
    check([h.get("same_machine_as") for h in listed] == [["b"], ["a"]], "vmlat hosts --json: a and b are one machine", out + err)
    code, out, err, _ = run_vmlat(vmlat, ["hosts", plan], work)
    check(code == 0 and "hosts a and b are one machine" in out, "vmlat hosts says so", out + err)


def test_named_twice(vmlat, lab, work):
    log("== one sshd named twice (127.0.0.1 and localhost), a lock directory each")
    lock_two = "/run/vmlat-samehost-test-two"
    hosts = (lab.host_toml(0, "one", [], layout=False, address="127.0.0.1") + "\n" +
             lab.host_toml(0, "two", [], layout=False, address="localhost",
                           extra_vars=f'vmlat_common_lock_dir = "{lock_two}"'))
    plan = os.path.join(work, "plan-twice.toml")
    with open(plan, "w") as f:
        f.write(plan_text(hosts, ["one", "two"], name="twice"))
    results = os.path.join(work, "results-twice")
    try:
        # Separate locks: only the controller's turns keep the cells apart.
        code, out, err, took = run_vmlat(vmlat, ["run", plan, "--results", results, "--no-provision"], work)
        check_one_machine_run(code, out, err, took, results, ["one", "two"], 4)
    finally:
        shutil.rmtree(lock_two, ignore_errors=True)


def test_local_and_itself_over_ssh(vmlat, lab, work):
    log("== this machine as a local host and again over ssh: refused")
    hosts = '[hosts.here]\naddress = "local"\n\n' + lab.host_toml(0, "lo", [], layout=False)
    plan = os.path.join(work, "plan-here.toml")
    with open(plan, "w") as f:
        f.write(plan_text(hosts, ["here", "lo"], periods=("1ms",), duration="1s", name="here"))
    results = os.path.join(work, "results-here")
    code, out, err, took = run_vmlat(vmlat, ["run", plan, "--results", results, "--no-provision"], work, timeout=120)
    check(code == 3 and "refused before anything ran" in err and "hosts here and lo are one machine" in err
          and "measurement lock" in err, f"exit 3, both hosts and why named ({took:.1f} s)", f"exit {code}\n{out}{err}")
    check(not os.path.exists(results), "nothing ran (no run directory)")


def test_two_controllers_one_run_id(vmlat, lab, work):
    log("== two controllers, one run id, one host")
    plan = os.path.join(work, "plan-twins.toml")
    with open(plan, "w") as f:
        f.write(plan_text(lab.host_toml(0, "a", [], layout=False), ["a"], periods=("1ms",), name="twins"))
    for attempt in range(3):
        # Run ids name the second a run starts: start both early in one.
        while time.time() % 1 > 0.3:
            time.sleep(0.01)
        roots = [os.path.join(work, f"results-twin{attempt}-{i}") for i in range(2)]
        procs = [start_vmlat(vmlat, ["run", plan, "--results", r, "--no-provision"], work) for r in roots]
        outs = [p.communicate(timeout=600) for p in procs]
        runs = [load(os.path.join(latest(r), "run.json")) for r in roots]
        if runs[0]["run_id"] == runs[1]["run_id"]:
            break
        log(f"   (run ids {runs[0]['run_id']} and {runs[1]['run_id']} differ: again)")
    check(runs[0]["run_id"] == runs[1]["run_id"], f"both runs are {runs[0]['run_id']}")
    for i, (p, (out, err), run) in enumerate(zip(procs, outs, runs)):
        check(p.returncode == 0 and run["cells"][0]["status"] == "measured", f"controller {i + 1}: exit 0, its cell measured",
              f"exit {p.returncode}\n{out}{err}")
    check(remote_run_dirs(runs[0]["run_id"]) == [], "both remote directories removed", str(remote_run_dirs(runs[0]["run_id"])))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmlat", required=True)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("skipped: needs root (sshd, SCHED_FIFO, the default layout under /opt and /var/lib)")
        return 77
    # The default layout is this machine's: one instance of this test at a time.
    guard = open("/run/lock/vmlat-samehost-test.lock", "w")
    fcntl.flock(guard, fcntl.LOCK_EX)
    if os.path.lexists(PREFIX):
        print(f"skipped: {PREFIX} exists on this machine; this test provisions vmlat's default prefix and would "
              f"replace it (remove {PREFIX} and {PREFIX}-releases to run it)")
        return 77
    existed = {p for p in MADE_BY_PROVISIONING if os.path.lexists(p)}
    vmlat = os.path.abspath(args.vmlat)
    work = tempfile.mkdtemp(prefix="vmlat-samehost-")
    t0 = time.time()
    try:
        with SshLab(2, root=os.path.join(work, "lab"), fake_machines=False) as lab:
            test_two_sshd_default_layout(vmlat, lab, work)
            if os.path.exists(os.path.join(PREFIX, "bin", "vmlat")):
                test_named_twice(vmlat, lab, work)
                test_local_and_itself_over_ssh(vmlat, lab, work)
                test_two_controllers_one_run_id(vmlat, lab, work)
            else:
                check(False, f"{PREFIX}/bin/vmlat installed: the other cases need it")
            check(lab.leftovers() == [], "at the end: nothing left running under either sshd", " ".join(lab.leftovers()))
    finally:
        for path in MADE_BY_PROVISIONING:
            if path not in existed:
                if os.path.islink(path) or os.path.isfile(path):
                    os.unlink(path)
                else:
                    shutil.rmtree(path, ignore_errors=True)
        if not args.keep and not FAILURES:
            shutil.rmtree(work, ignore_errors=True)
        elif FAILURES:
            log(f"kept {work} for diagnosis")
    log(f"{CHECKS[0]} checks, {len(FAILURES)} failed ({time.time() - t0:.0f} s)" +
        "".join(f"\n  failed: {f}" for f in FAILURES))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
