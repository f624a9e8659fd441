"""A lab of SSH hosts on this machine, for the multi-host tests and the
hosts benchmark: real OpenSSH servers (Debian's openssh-server) on loopback,
each on its own free port, with a host key and a client key made for the
occasion.

By default each "host" is made to look like a machine of its own:

- its own vmlat prefix, work directory and lock directory (host variables
  of the plan), so that two logical hosts neither share an install nor wait
  for each other's measurement lock;
- a FAKE machine identity: its sshd runs in a mount namespace of its own
  (unshare -m) where a made-up /etc/machine-id and
  /proc/sys/kernel/random/boot_id are bind-mounted over the real ones, so
  every session it starts (vmlat's facts included) sees another machine.
  vmlat measures hosts that are one machine one at a time
  (docs/plan-format.md, "One machine under several names"); the fake lets
  the tests exercise hosts measured in parallel on a single box. It is a
  fake: the two "machines" share this machine's CPUs.

SshLab(n, env={"VMLAT_PLUGIN_PATH": dir}) sets variables in every session
(sshd's SetEnv): how a test gives the remote vmlat its test plugins.
SshLab(n, fake_machines=False) gives sshds that are honestly this machine
(no namespace, the real identity); host_toml(..., layout=False) leaves the
vmlat layout at its defaults (/opt/vmlat, /var/lib/vmlat, /run/vmlat).

    with SshLab(2) as lab:
        lab.hosts_toml(tags=[["lab_a"], ["lab_b"]])   # [hosts.*] tables for a plan
        lab.stop(1)                                    # that host's sshd goes away
        lab.start(1)

Every sshd runs in the foreground as our child (-D), so stopping the lab
stops them and every session they started: nothing is left running.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid):
    """Pids of every live descendant of pid (from /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        if rest[0] == "Z":
            continue
        children.setdefault(int(rest[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


class SshLab:
    def __init__(self, count, root=None, fake_machines=True, env=None):
        self.count = count
        self.fake_machines = fake_machines
        self.env = env or {}  # set in every session (sshd's SetEnv), e.g. VMLAT_PLUGIN_PATH
        self.root = root or tempfile.mkdtemp(prefix="vmlat-sshlab-")
        self.ports = [free_port() for _ in range(count)]
        self.servers = [None] * count
        self.key = os.path.join(self.root, "client_key")
        self.known_hosts = os.path.join(self.root, "known_hosts")

    def __enter__(self):
        for tool in ("/usr/sbin/sshd", "ssh-keygen") + (("unshare", "mount") if self.fake_machines else ()):
            if not shutil.which(tool):
                raise RuntimeError(f"{tool} not found: install openssh-server (ci/bootstrap does)")
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
        os.makedirs(self.root, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(self.root, "host_key")], check=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key], check=True)
        shutil.copy(self.key + ".pub", os.path.join(self.root, "authorized_keys"))
        for i in range(self.count):
            os.makedirs(self.host_dir(i), exist_ok=True)
            if self.fake_machines:
                self.make_fake_identity(i)
            self.start(i)
        return self

    def __exit__(self, *exc):
        self.close()

    def host_dir(self, i):
        return os.path.join(self.root, f"host{i}")

    def config(self, i):
        path = os.path.join(self.root, f"sshd_{i}.conf")
        with open(path, "w") as f:
            f.write(f"""Port {self.ports[i]}
ListenAddress 127.0.0.1
HostKey {self.root}/host_key
AuthorizedKeysFile {self.root}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
MaxStartups 100
MaxSessions 100
""")
            if self.env:
                f.write("SetEnv " + " ".join(f"{k}={v}" for k, v in self.env.items()) + "\n")
        return path

    def make_fake_identity(self, i):
        """FAKE /etc/machine-id and boot id files for host i (see the module's docstring)."""
        for name, value in (("fake-machine-id", uuid.uuid4().hex), ("fake-boot-id", str(uuid.uuid4()))):
            with open(os.path.join(self.host_dir(i), name), "w") as f:
                f.write(value + "\n")

    def start(self, i):
        log = open(os.path.join(self.root, f"sshd_{i}.log"), "ab")
        argv = ["/usr/sbin/sshd", "-D", "-e", "-f", self.config(i)]
        if self.fake_machines:
            # The bind mounts live and die with the namespace; unshare and sh
            # exec, so the sshd keeps the pid we stop it by.
            argv = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                    'mount --bind "$1" /etc/machine-id && mount --bind "$2" /proc/sys/kernel/random/boot_id '
                    '&& shift 2 && exec "$@"', "sh",
                    os.path.join(self.host_dir(i), "fake-machine-id"), os.path.join(self.host_dir(i), "fake-boot-id")] + argv
        self.servers[i] = subprocess.Popen(argv, stdout=log, stderr=log)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.servers[i].poll() is not None:
                raise RuntimeError(f"sshd {i} exited ({self.servers[i].returncode}): see {log.name}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.ports[i])) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"sshd {i} did not listen on port {self.ports[i]}")

    def stop(self, i):
        """Stops host i's sshd and every session it runs (a host going away)."""
        server = self.servers[i]
        if server is None:
            return
        sessions = descendants(server.pid)
        server.terminate()
        for pid in sessions:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        server.wait(timeout=10)
        self.servers[i] = None

    def close(self):
        for i in range(self.count):
            self.stop(i)
        shutil.rmtree(self.root, ignore_errors=True)

    def leftovers(self, names=("vmlat", "vmlat-probe", "cyclictest", "stress-ng", "qemu-system-x86")):
        """'name pid' of measurement processes still running under the sshds."""
        found = []
        for server in self.servers:
            if server is None:
                continue
            for pid in descendants(server.pid):
                if comm(pid) in names or comm(pid).startswith("stress-ng"):
                    found.append(f"{comm(pid)} {pid}")
        return found

    def host_toml(self, i, name, tags, provision=True, layout=True, address="127.0.0.1", extra_vars=""):
        """A [hosts.NAME] table for host i; layout=False: vmlat's default layout."""
        d = self.host_dir(i)
        own = f'vmlat_common_prefix = "{d}/opt", vmlat_common_work_dir = "{d}/work", vmlat_common_lock_dir = "{d}/lock"'
        var_list = ", ".join(v for v in (own if layout else "", extra_vars) if v)
        return f"""[hosts.{name}]
address = "{address}"
port = {self.ports[i]}
user = "root"
identity_file = "{self.key}"
known_hosts = "{self.known_hosts}"
tags = [{", ".join('"' + t + '"' for t in tags)}]
provision = {"true" if provision else "false"}
vars = {{ {var_list} }}
"""

    def inventory_ini(self, names, groups):
        """The same lab as an Ansible INI inventory, as a lab admin has one."""
        lines = []
        for i, name in enumerate(names):
            d = self.host_dir(i)
            lines.append(f"{name} ansible_host=127.0.0.1 ansible_port={self.ports[i]} ansible_user=root "
                         f"ansible_ssh_private_key_file={self.key} vmlat_known_hosts={self.known_hosts} "
                         f"ansible_ssh_common_args='-o UserKnownHostsFile={self.known_hosts}' vmlat_common_prefix={d}/opt "
                         f"vmlat_common_work_dir={d}/work vmlat_common_lock_dir={d}/lock")
        for group, members in groups.items():
            lines.append(f"[{group}]")
            lines.extend(members)
        return "\n".join(lines) + "\n"
