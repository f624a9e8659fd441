#!/usr/bin/python3
# The facts vmlat's placement needs about a host, read on the host itself.
# The keys shared with vmlat's own collect_system_facts (core/src/local.cpp)
# are computed the same way, so a host's facts read the same whether Ansible
# or vmlat gathered them. The format is documented in ansible/README.md.

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import subprocess

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: vmlat_host_facts
short_description: Facts about a host that vmlat's placement needs
description:
  - Reads kernel release and preemption model, CPUs (count, model, isolated),
    whether KVM is usable, whether this is Xen's Dom0 (xl info), the installed
    vmlat and the reboot markers of the kvm_host and xen_host roles.
  - Reads only; changes nothing. Supports check mode.
options:
  vmlat_prefix:
    description: Where vmlat_common installed vmlat (its bin/vmlat is run with "version").
    type: path
    default: /opt/vmlat
  reboot_marker_dir:
    description: The roles' reboot marker directory (one file per role, one reason a line).
    type: path
    default: /run/vmlat-reboot-required
author: vmlat
"""

RETURN = r"""
vmlat_host_facts:
  description: The facts (see ansible/README.md, "Facts").
  returned: always
  type: dict
"""

FACTS_FORMAT = 1
KVM_GET_API_VERSION = 0xAE00
KVM_API_VERSION = 12


def read_text(path):
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def run(argv, timeout_s=20):
    """stdout of argv (no shell), or None when it cannot run or fails."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if p.returncode != 0:
        return None
    return p.stdout.decode("utf-8", "replace").strip()


def preempt_model(realtime, version):
    # As collect_system_facts: /sys/kernel/realtime reads 1 only on
    # PREEMPT_RT kernels; older RT kernels only say so in uname -v.
    if realtime == "1":
        return "PREEMPT_RT"
    if version is None:
        return "unknown"
    if "PREEMPT_RT" in version:
        return "PREEMPT_RT"
    if "PREEMPT_DYNAMIC" in version:
        return "PREEMPT_DYNAMIC"
    if "PREEMPT " in version:
        return "PREEMPT"
    return "none"


def cpuinfo_fields(text):
    model, flags = None, []
    for line in (text or "").splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = value.split()
        if model is not None and flags:
            break
    return model, flags


def kvm_check(flags):
    # The kvm backend's own test (plugins/kvm/src/kvm_backend.cpp): some
    # sandboxes expose a /dev/kvm whose guests never run.
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return {"usable": False, "reason": "cannot open /dev/kvm: " + os.strerror(e.errno or errno.EIO)}
    try:
        version = fcntl.ioctl(fd, KVM_GET_API_VERSION, 0)
    except OSError as e:
        version = -(e.errno or 1)
    finally:
        os.close(fd)
    if version != KVM_API_VERSION:
        return {"usable": False, "reason": "/dev/kvm reports API version %d, not %d" % (version, KVM_API_VERSION)}
    if "vmx" not in flags and "svm" not in flags:
        return {"usable": False,
                "reason": "/dev/kvm exists but the CPU advertises neither vmx nor svm (no hardware virtualization "
                          "for this machine; nested virtualization off?)"}
    return {"usable": True, "reason": "/dev/kvm usable (API %d)" % version}


def xen_check():
    hv_type = read_text("/sys/hypervisor/type")
    caps = read_text("/proc/xen/capabilities")
    facts = {"dom0": False, "version": None, "scheduler": None, "xen_commandline": None, "nr_cpus": None,
             "reason": None}
    if hv_type != "xen":
        facts["reason"] = "not running on Xen (/sys/hypervisor/type: %s)" % (hv_type or "absent")
        return facts
    if caps is None or "control_d" not in caps:
        facts["reason"] = "a Xen guest, not Dom0 (/proc/xen/capabilities: %s)" % (caps or "absent")
        return facts
    info = run(["xl", "info"])
    if info is None:
        facts["reason"] = "Dom0, but `xl info` fails (xen-utils installed? xencommons running?)"
        return facts
    values = {}
    for line in info.splitlines():
        m = re.match(r"^(\w+)\s*:\s*(.*)$", line)
        if m:
            values[m.group(1)] = m.group(2).strip()
    major, minor, extra = values.get("xen_major"), values.get("xen_minor"), values.get("xen_extra", "")
    facts.update({
        "dom0": True,
        "version": "%s.%s%s" % (major, minor, extra) if major and minor else None,
        "scheduler": values.get("xen_scheduler"),
        "xen_commandline": values.get("xen_commandline"),
        "nr_cpus": int(values["nr_cpus"]) if values.get("nr_cpus", "").isdigit() else None,
        "reason": "Dom0 of Xen %s.%s%s" % (major, minor, extra),
    })
    return facts


def reboot_markers(marker_dir):
    out = {}
    try:
        names = sorted(os.listdir(marker_dir))
    except OSError:
        return out
    for name in names:
        text = read_text(os.path.join(marker_dir, name))
        if text:
            out[name] = [line for line in text.splitlines() if line.strip()]
    return out


def vmlat_installed(prefix):
    exe = os.path.join(prefix, "bin", "vmlat")
    version = run([exe, "version"]) if os.access(exe, os.X_OK) else None
    return {"prefix": prefix, "installed": version is not None, "version": version}


def collect(prefix, marker_dir):
    u = os.uname()
    release, version = u.release, u.version
    realtime = read_text("/sys/kernel/realtime")
    model = preempt_model(realtime, version)
    cpu_model, flags = cpuinfo_fields(read_text("/proc/cpuinfo"))
    kvm = kvm_check(flags)
    xen = xen_check()
    reboot = reboot_markers(marker_dir)
    return {
        "format": FACTS_FORMAT,
        # The keys of collect_system_facts, same meaning:
        "hostname": u.nodename,
        "machine": u.machine,
        "kernel_release": release,
        "kernel_version": version,
        "kernel_cmdline": read_text("/proc/cmdline"),
        "preempt_model": model,
        "preempt_rt": model == "PREEMPT_RT",
        "cpu_count": os.sysconf("SC_NPROCESSORS_CONF"),
        "cpu_model": cpu_model,
        # What placement needs besides:
        "cpus_online": read_text("/sys/devices/system/cpu/online"),
        "isolated_cpus": read_text("/sys/devices/system/cpu/isolated") or "",
        "nohz_full_cpus": (read_text("/sys/devices/system/cpu/nohz_full") or "").replace("(null)", ""),
        "virtualization": run(["systemd-detect-virt"]) or "none",
        "hypervisors": [name for name, ok in (("kvm", kvm["usable"]), ("xen", xen["dom0"])) if ok],
        "kvm": kvm,
        "xen": xen,
        "vmlat": vmlat_installed(prefix),
        "reboot_required": reboot,
        "reboot_needed": bool(reboot),
    }


def main():
    module = AnsibleModule(
        argument_spec={
            "vmlat_prefix": {"type": "path", "default": "/opt/vmlat"},
            "reboot_marker_dir": {"type": "path", "default": "/run/vmlat-reboot-required"},
        },
        supports_check_mode=True,
    )
    facts = collect(module.params["vmlat_prefix"], module.params["reboot_marker_dir"])
    module.exit_json(changed=False, vmlat_host_facts=facts)


if __name__ == "__main__":
    main()
