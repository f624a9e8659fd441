# vmlat provisions every host of a run with one ansible-playbook and must
# know, host by host, whether provisioning failed and why: a host that fails
# costs only its own cells. Ansible's recap is text for people; this callback
# writes the same counts, and each task's outcome, as one JSON file.
from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: vmlat_hosts
type: aggregate
short_description: each host's outcome of a playbook run, as JSON for vmlat
description:
  - At the end of the run, writes the file named by the environment variable
    VMLAT_ANSIBLE_REPORT (nothing when it is unset)
  - '{"format": 1, "hosts": {NAME: {"ok": N, "changed": N, "unreachable": N,
    "failures": N, "skipped": N, "rescued": N, "ignored": N,
    "tasks": [{"task": NAME, "status": "ok|changed|skipped|failed|ignored|unreachable",
    "msg": TEXT}]}}}'
  - the counts are those of Ansible's PLAY RECAP; a host that never ran a
    task is absent
requirements:
  - enabled with ANSIBLE_CALLBACKS_ENABLED=vmlat_hosts, found through
    ANSIBLE_CALLBACK_PLUGINS (vmlat sets both)
"""

# A task's message is for a log line and a one-line reason, not a dump.
MAX_MESSAGE = 2000


def message(result):
    msg = result.get("msg")
    text = msg if isinstance(msg, str) else (json.dumps(msg, sort_keys=True) if msg is not None else "")
    stderr = result.get("stderr")
    if isinstance(stderr, str) and stderr.strip():
        text = (text + " " if text else "") + "stderr: " + stderr.strip()[-400:]
    return text[:MAX_MESSAGE]


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "vmlat_hosts"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._tasks = {}
        # host -> message of the last failed loop item: a looped task's own
        # message only says that one failed.
        self._item_failure = {}

    def _add(self, result, status):
        host = result._host.get_name()
        msg = message(result._result)
        if status in ("failed", "ignored") and host in self._item_failure:
            msg = self._item_failure.pop(host) or msg
        self._tasks.setdefault(host, []).append({"task": result._task.get_name(), "status": status, "msg": msg})

    def v2_runner_on_ok(self, result):
        self._add(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._add(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_unreachable(self, result):
        self._add(result, "unreachable")

    def v2_runner_on_skipped(self, result):
        self._add(result, "skipped")

    def v2_runner_item_on_failed(self, result):
        self._item_failure[result._host.get_name()] = message(result._result)

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("VMLAT_ANSIBLE_REPORT")
        if not path:
            return
        hosts = {}
        for host in sorted(stats.processed):
            hosts[host] = dict(stats.summarize(host), tasks=self._tasks.get(host, []))
        # Written whole or not at all: vmlat reads a missing report as
        # "Ansible said nothing about these hosts".
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"format": 1, "hosts": hosts}, f, sort_keys=True)
        os.replace(tmp, path)
