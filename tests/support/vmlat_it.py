"""Shared pieces of vmlat's Python integration tests (stdlib only): checks
that record a failure and go on, so one run reports every problem, and child
processes that die with the test (even when ctest kills it at its timeout)."""

import ctypes
import json
import os
import signal

FAILURES = []
CHECKS = [0]


def log(msg):
    print(msg, flush=True)


def check(cond, msg, detail=""):
    """Records msg as failed unless cond; `detail` (what was seen) is printed with a failure."""
    CHECKS[0] += 1
    if not cond:
        FAILURES.append(msg)
        log("FAIL: " + msg + (f"\n    {detail}" if detail else ""))
    return cond


def die_with_parent():
    """preexec_fn: SIGKILL when this script dies (PR_SET_PDEATHSIG), in a process group of its own."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    os.setpgrp()


def load_json(path):
    with open(path) as f:
        return json.load(f)


def dump_json(path, doc):
    with open(path, "w") as f:
        json.dump(doc, f)
