#!/usr/bin/env python3
"""A lab of two hosts, for real (CTest vmlat_multihost, labels hosts;integration):
two OpenSSH servers on loopback (tests/support/sshlab.py), a throwaway key,
two plan hosts with different tags, each sshd with a FAKE machine identity of
its own so that vmlat takes them for two machines (hosts that are one machine
are measured one at a time: tests/hosts/samehost_it.py). vmlat provisions both with Ansible
(ansible/provision.yml: vmlat_common installs the bundle into each host's own
prefix), measures their cells in parallel over ssh, and gathers every cell
into one run directory. Then: one sshd stopped (that host's cells are
infrastructure errors with ssh's reason, the other's are intact), SIGINT
mid-run (exit 130, nothing left running on either host), a host that drops
mid-cell, the user's own INI inventory, placement refusals before anything
runs, and no secret in any file. Latency values are never asserted.

Usage: multihost_it.py --vmlat build/vmlat [--keep]
"""
import argparse
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
from sshlab import SshLab, descendants, comm  # noqa: E402

checks = {"ok": 0, "failed": 0}


def check(cond, what, detail=""):
    if cond:
        checks["ok"] += 1
        print(f"  ok: {what}")
    else:
        checks["failed"] += 1
        print(f"  FAILED: {what}" + (f"\n    {detail}" if detail else ""))
    return cond


def run_vmlat(vmlat, args, cwd, timeout=900):
    t0 = time.time()
    p = subprocess.run([vmlat] + args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr, time.time() - t0


def latest(results):
    return os.path.realpath(os.path.join(results, "latest"))


def load(path):
    with open(path) as f:
        return json.load(f)


def every_json_parses(run_dir):
    bad = []
    for path in glob.glob(os.path.join(run_dir, "**", "*.json"), recursive=True):
        try:
            load(path)
        except Exception as e:  # noqa: BLE001
            bad.append(f"{path}: {e}")
    return bad


def plan_text(lab, cells_per_host, duration="2s", extra="", provision=True, beta_vars=""):
    periods = ", ".join(f'"{p}"' for p in ["1ms", "500us", "250us", "2ms"][:cells_per_host])
    return f"""[plan]
name = "lab"
duration = "{duration}"
cpus = [0]

{lab.host_toml(0, "alpha", ["lab_a"], provision)}
{lab.host_toml(1, "beta", ["lab_b"], provision, extra_vars=beta_vars)}
[backend.host]
[probe.native]
plugin = "cyclic"
engine = "native"
[matrix]
period = [{periods}]
host = ["alpha", "beta"]
[[gate]]
name = "loose"
bound = "10s"
{extra}"""


def provisioning_lines(run_dir):
    """The run log's lines that start an ansible-playbook."""
    with open(os.path.join(run_dir, "run.log")) as f:
        return [line for line in f if "with one ansible-playbook" in line]


def intervals(run_dir):
    """host -> [(start, end)] of its cells (ISO strings sort as times)."""
    out = {}
    for path in glob.glob(os.path.join(run_dir, "cells", "*", "result.json")):
        r = load(path)
        t = r.get("timings", {})
        if "started" in t and "finished" in t:
            out.setdefault(r["cell"]["host"], []).append((t["started"], t["finished"]))
    return out


def test_two_hosts(vmlat, lab, work):
    print("== two hosts provisioned and measured in parallel")
    plan = os.path.join(work, "plan.toml")
    with open(plan, "w") as f:
        f.write(plan_text(lab, 2))
    results = os.path.join(work, "results")
    code, out, err, took = run_vmlat(vmlat, ["run", plan, "--results", results], work)
    check(code == 0, f"vmlat run exits 0 ({took:.1f} s)", out + err)
    run_dir = latest(results)
    run = load(os.path.join(run_dir, "run.json"))
    cells = run["cells"]
    check(len(cells) == 4 and all(c["status"] == "measured" for c in cells), "4 cells measured", json.dumps(cells))
    check({c["host"] for c in cells} == {"alpha", "beta"}, "cells on both hosts")
    for c in cells:
        r = load(os.path.join(run_dir, "cells", c["id"], "result.json"))
        check(r["cell"]["host"] == c["host"] and r["status"] == "measured" and r["merged"]["stats"]["samples"] > 0,
              f"{c['id']}: result.json came back from {c['host']}, measured")
        check(os.path.exists(os.path.join(run_dir, "cells", c["id"], "native-probe.out")),
              f"{c['id']}: the probe's raw output came back too")
    for name in ("alpha", "beta"):
        check(run["hosts"][name]["vmlat_host"]["reachable"] is True and run["hosts"][name]["kernel_release"],
              f"run.json has {name}'s facts")
        check(os.path.exists(os.path.join(run_dir, "hosts", name, "provision.log")), f"{name} was provisioned (log kept)")
        log = open(os.path.join(run_dir, "hosts", name, "provision.log")).read()
        check(f"{name} : ok=" in log and "failed=0" in log, f"{name}: provision.yml failed nothing (its recap line)", log)
    started = provisioning_lines(run_dir)
    check(len(started) == 1 and "alpha, beta" in started[0] and "ansible-playbook " in started[0] and "--forks 2" in started[0],
          "one ansible-playbook provisioned both hosts (run.log)", "".join(started))
    output = open(os.path.join(run_dir, "provision.log")).read()
    check(output.count("PLAY RECAP") == 1 and all(f"\n{n} " in output.split("PLAY RECAP")[-1] for n in ("alpha", "beta")),
          "its output has one PLAY RECAP with both hosts", output[-2000:])
    check(run["hosts"]["alpha"]["identity"] != run["hosts"]["beta"]["identity"]
          and run["hosts"]["alpha"]["vmlat_host"]["same_machine_as"] == [],
          "the lab's FAKE machine identities make alpha and beta two machines (sshlab.py)",
          json.dumps([run["hosts"][n].get("identity") for n in ("alpha", "beta")]))
    inventory = load(os.path.join(run_dir, "inventory.json"))
    check(set(inventory["all"]["children"]) == {"lab_a", "lab_b"}, "the inventory has a group per tag")
    spans = intervals(run_dir)
    overlap = any(a0 < b1 and b0 < a1 for a0, a1 in spans.get("alpha", []) for b0, b1 in spans.get("beta", []))
    check(overlap, "the two hosts measured at the same time (cell timestamps overlap)", json.dumps(spans))
    for name, host_spans in spans.items():
        ordered = sorted(host_spans)
        check(all(ordered[i][1] <= ordered[i + 1][0] for i in range(len(ordered) - 1)),
              f"{name} ran one cell at a time", json.dumps(ordered))
    check(every_json_parses(run_dir) == [], "every JSON file parses", "\n".join(every_json_parses(run_dir)))
    key = open(lab.key).read().split("\n")[1]  # a line of the private key's body
    leaked = [p for p in glob.glob(os.path.join(work, "**", "*"), recursive=True)
              if os.path.isfile(p) and not p.startswith(lab.root + "/") and key in open(p, errors="replace").read()]
    check(leaked == [], "the private key appears in no file of the run or its logs", " ".join(leaked))
    check(lab.leftovers() == [], "nothing left running on either host", " ".join(lab.leftovers()))
    for i in range(2):
        check(not os.listdir(os.path.join(lab.host_dir(i), "work", "runs")), f"host {i}: the run's directory was removed there")

    # hosts: reachability, tags and facts.
    code, out, err, _ = run_vmlat(vmlat, ["hosts", plan, "--json"], work)
    hosts = json.loads(out) if code == 0 else []
    check(code == 0 and [h["reachable"] for h in hosts] == [True, True], "vmlat hosts: both reachable", out + err)
    check(all(h["facts"].get("preempt_model") and h["facts"].get("cpu_count") for h in hosts), "vmlat hosts: facts")
    return plan


def test_one_host_fails_provisioning(vmlat, lab, work):
    print("== one host fails provisioning, the other measures")
    # A value the vmlat_common role refuses (its "Check the numbers" task).
    plan = os.path.join(work, "plan-badvar.toml")
    with open(plan, "w") as f:
        f.write(plan_text(lab, 1, duration="1s", beta_vars='vmlat_common_keep_releases = "many"'))
    results = os.path.join(work, "results-badvar")
    code, out, err, took = run_vmlat(vmlat, ["run", plan, "--results", results], work)
    check(code == 3, f"exit 3 ({took:.1f} s)", out + err)
    run_dir = latest(results)
    run = load(os.path.join(run_dir, "run.json"))
    alpha = [c for c in run["cells"] if c["host"] == "alpha"]
    beta = [c for c in run["cells"] if c["host"] == "beta"]
    check(alpha and all(c["status"] == "measured" for c in alpha), "alpha was provisioned and measured", json.dumps(alpha))
    check(beta and all(c["status"] == "infra-error" and "Check the numbers" in c.get("error", "")
                       and "vmlat_common_keep_releases" in c.get("error", "") for c in beta),
          "beta's cells are infrastructure errors naming the failed task and why", json.dumps(beta))
    started = provisioning_lines(run_dir)
    check(len(started) == 1 and "alpha, beta" in started[0], "both in one ansible-playbook (run.log)", "".join(started))
    beta_log = open(os.path.join(run_dir, "hosts", "beta", "provision.log")).read()
    check("failed=1" in beta_log and "Check the numbers" in beta_log, "hosts/beta/provision.log: the failed task, failed=1", beta_log)
    alpha_log = open(os.path.join(run_dir, "hosts", "alpha", "provision.log")).read()
    check("alpha : ok=" in alpha_log and "failed=0" in alpha_log
          and not any(line.startswith("failed ") for line in alpha_log.splitlines()),
          "hosts/alpha/provision.log: alpha's own tasks, none failed, failed=0", alpha_log)
    # `vmlat provision` takes the same path.
    logs = os.path.join(work, "provision-badvar")
    code, out, err, took = run_vmlat(vmlat, ["provision", plan, "--results", logs], work)
    check(code == 3 and "alpha: provisioned" in out and "beta: FAILED: provisioning beta failed: task '" in out
          and "Check the numbers' failed" in out,
          f"vmlat provision: exit 3, alpha provisioned, beta failed by name ({took:.1f} s)", f"exit {code}\n{out}{err}")
    output = open(os.path.join(logs, "ansible-playbook.out")).read() if os.path.exists(os.path.join(logs, "ansible-playbook.out")) else ""
    check(output.count("PLAY RECAP") == 1, "vmlat provision: one ansible-playbook (one PLAY RECAP)", output[-2000:])
    check(lab.leftovers() == [], "nothing left running on either host", " ".join(lab.leftovers()))


def test_one_host_down(vmlat, lab, work, plan):
    print("== one sshd stopped")
    lab.stop(1)
    results = os.path.join(work, "results-down")
    code, out, err, took = run_vmlat(vmlat, ["run", plan, "--results", results], work)
    check(code == 3, f"exit 3 ({took:.1f} s)", out + err)
    run = load(os.path.join(latest(results), "run.json"))
    beta = [c for c in run["cells"] if c["host"] == "beta"]
    alpha = [c for c in run["cells"] if c["host"] == "alpha"]
    check(all(c["status"] == "infra-error" and "Connection refused" in c.get("error", "") for c in beta),
          "beta's cells are infrastructure errors naming ssh's reason", json.dumps(beta))
    check(all(c["status"] == "measured" for c in alpha), "alpha's cells are measured and stored", json.dumps(alpha))
    check("Connection refused" in out, "the summary says why in one line", out)
    code, out, err, _ = run_vmlat(vmlat, ["hosts", plan], work)
    check(code == 3 and "no" in out.split("\n")[2], "vmlat hosts: beta unreachable, exit 3", out + err)
    lab.start(1)


def test_sigint(vmlat, lab, work, plan_path):
    print("== SIGINT on the controller mid-run")
    with open(plan_path) as f:
        text = f.read().replace('duration = "2s"', 'duration = "8s"')
    plan = os.path.join(work, "plan-long.toml")
    with open(plan, "w") as f:
        f.write(text)
    results = os.path.join(work, "results-int")
    p = subprocess.Popen([vmlat, "run", plan, "--results", results, "--no-provision"], cwd=work,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Until both hosts measure.
    deadline = time.time() + 60
    while time.time() < deadline:
        running = [pid for s in lab.servers for pid in descendants(s.pid) if comm(pid) == "vmlat-probe"]
        if len(running) >= 2:
            break
        time.sleep(0.1)
    check(len(running) >= 2, "both hosts were measuring")
    time.sleep(1)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=180)
    check(p.returncode == 130, "exit 130", out + err)
    run = load(os.path.join(latest(results), "run.json"))
    interrupted = [c for c in run["cells"] if c["status"] == "interrupted"]
    check(len(interrupted) == 2 and {c["host"] for c in interrupted} == {"alpha", "beta"},
          "the cell of each host is interrupted", json.dumps(run["cells"]))
    for c in interrupted:
        r = load(os.path.join(latest(results), "cells", c["id"], "result.json"))
        check(r["merged"] and r["merged"]["stats"]["samples"] > 0, f"{c['id']}: what was measured came back")
    time.sleep(0.5)
    check(lab.leftovers() == [], "nothing left running on either host", " ".join(lab.leftovers()))
    # --resume across hosts: the interrupted and not-run cells, on their hosts.
    code, out, err, took = run_vmlat(vmlat, ["run", plan, "--resume", latest(results), "--no-provision"], work)
    check(code == 0, f"--resume finishes the run on both hosts ({took:.1f} s)", out + err)
    run = load(os.path.join(latest(results), "run.json"))
    check(all(c["status"] == "measured" for c in run["cells"]) and {c["host"] for c in run["cells"]} == {"alpha", "beta"},
          "every cell measured on its host after --resume", json.dumps(run["cells"]))
    check(len(glob.glob(os.path.join(latest(results), "attempts", "*"))) == 2, "the interrupted attempts are kept aside")


def test_host_drops(vmlat, lab, work, plan_path):
    print("== a host that drops mid-cell")
    with open(plan_path) as f:
        text = f.read().replace('duration = "2s"', 'duration = "6s"')
    plan = os.path.join(work, "plan-drop.toml")
    with open(plan, "w") as f:
        f.write(text)
    results = os.path.join(work, "results-drop")
    p = subprocess.Popen([vmlat, "run", plan, "--results", results, "--no-provision"], cwd=work,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not [pid for pid in descendants(lab.servers[1].pid) if comm(pid) == "vmlat-probe"]:
        time.sleep(0.1)
    lab.stop(1)  # beta's sshd and its sessions go away mid-cell
    out, err = p.communicate(timeout=300)
    check(p.returncode == 3, "exit 3", out + err)
    run = load(os.path.join(latest(results), "run.json"))
    beta = [c for c in run["cells"] if c["host"] == "beta"]
    check(beta and all(c["status"] == "infra-error" for c in beta), "beta's cells are infrastructure errors", json.dumps(beta))
    check(all(c["status"] == "measured" for c in run["cells"] if c["host"] == "alpha"), "alpha's cells are measured")
    lab.start(1)


def test_inventory(vmlat, lab, work):
    print("== the user's own inventory")
    inventory = os.path.join(work, "lab.ini")
    with open(inventory, "w") as f:
        f.write(lab.inventory_ini(["alpha", "beta"], {"lab_a": ["alpha"], "lab_b": ["beta"]}))
    plan = os.path.join(work, "plan-inv.toml")
    with open(plan, "w") as f:
        f.write("""[plan]
name = "inv"
duration = "1s"
cpus = [0]
[backend.host]
[probe.native]
plugin = "cyclic"
engine = "native"
[matrix]
period = ["1ms", "500us"]
""")
    results = os.path.join(work, "results-inv")
    code, out, err, took = run_vmlat(vmlat, ["run", plan, "--inventory", inventory, "--no-provision", "--results", results], work)
    check(code == 0, f"vmlat run --inventory exits 0 ({took:.1f} s)", out + err)
    run = load(os.path.join(latest(results), "run.json"))
    check({c["host"] for c in run["cells"]} == {"alpha", "beta"}, "placement spread the cells over the inventory's hosts",
          json.dumps(run["cells"]))
    check(run["hosts"]["alpha"]["vmlat_host"]["tags"] == ["lab_a"], "the inventory's groups are the hosts' tags")
    check(not os.path.exists(os.path.join(latest(results), "inventory.json")), "the user's inventory is not copied")


def test_refusals(vmlat, lab, work):
    print("== cells no host can take are refused before anything runs")
    for what, extra, expect in [
        ("an rt cell and only non-RT hosts", '[matrix]\nhost_kernel = ["rt"]\n', "needs a PREEMPT_RT host kernel"),
        ("a kvm cell and no kvm host", '[backend.kvm]\nguest_kernel = "nrt"\n', "lacks the tag kvm"),
    ]:
        plan = os.path.join(work, "refuse.toml")
        backend = "[backend.kvm]\n" if "kvm" in extra else "[backend.host]\n"
        matrix = extra if "matrix" in extra else ""
        with open(plan, "w") as f:
            f.write(f"""[plan]
name = "refuse"
duration = "1s"
{lab.host_toml(0, "alpha", ["lab_a"], False)}
{backend}
[probe.native]
plugin = "cyclic"
engine = "native"
{matrix}""")
        results = os.path.join(work, "results-refused")
        code, out, err, _ = run_vmlat(vmlat, ["run", plan, "--results", results], work)
        check(code == 3 and "refused before anything ran" in err and expect in err and "cell " in err,
              f"{what}: exit 3, the cell and why named", err)
        check(not os.path.exists(results), f"{what}: nothing ran (no run directory)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmlat", required=True)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("skipped: needs root (sshd, SCHED_FIFO)")
        return 77
    vmlat = os.path.abspath(args.vmlat)
    work = tempfile.mkdtemp(prefix="vmlat-multihost-")
    t0 = time.time()
    try:
        with SshLab(2, root=os.path.join(work, "lab")) as lab:
            plan = test_two_hosts(vmlat, lab, work)
            test_one_host_fails_provisioning(vmlat, lab, work)
            test_one_host_down(vmlat, lab, work, plan)
            test_sigint(vmlat, lab, work, plan)
            test_host_drops(vmlat, lab, work, plan)
            test_inventory(vmlat, lab, work)
            test_refusals(vmlat, lab, work)
            check(lab.leftovers() == [], "at the end: nothing left running under either sshd")
    finally:
        if not args.keep and checks["failed"] == 0:
            shutil.rmtree(work, ignore_errors=True)
        elif checks["failed"]:
            print(f"kept {work} for diagnosis")
    print(f"{checks['ok']} checks, {checks['failed']} failed ({time.time() - t0:.0f} s)")
    return 1 if checks["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
