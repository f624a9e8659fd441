#!/bin/sh
# xen_overhead.sh: the baseline of bench/xen_cell_overhead.py, run in Dom0
# (busybox sh: the lab's Dom0 has no bash). A plain script doing what one
# xen-pv cell of `vmlat run` does, minus everything vmlat adds: xl create of
# a PV domU on a ready guest image, wait for the agent's hello on the
# domain's console, run cyclictest in the domU with the cyclic probe's default
# argv (its spike list included: --spike=100 --spike-nodes=10000, whose lines
# come back as its stdout over the console), read its JSON back, shut the
# domU down and make sure it is gone.
#
# Usage: xen_overhead.sh KERNEL RAMDISK DURATION_S PERIOD_US
# Prints "t_hello=<s> t_first_sample=<s> t_done=<s>" (seconds since start).
# Frames are written with printf and their CRC32 taken from gzip's trailer.
set -eu

kernel=$1 ramdisk=$2 duration=$3 period_us=$4
# /proc/uptime: 10 ms resolution (busybox's date has no %N).
now() { read -r up _ </proc/uptime; echo "$up"; }
t0=$(now)
since() { awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

name=vmlat-bench-sh-$$
dir=$(mktemp -d /tmp/vmlat-bench-xen.XXXXXX)
cleanup() {
  if xl domid "$name" >/dev/null 2>&1; then xl destroy "$name" || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

cat >"$dir/$name.cfg" <<EOF
name = "$name"
type = "pv"
kernel = "$kernel"
ramdisk = "$ramdisk"
cmdline = "console=hvc0 panic=-1 quiet vmlat.port=/dev/hvc0 vmlat.printk=1"
memory = 256
vcpus = 1
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
EOF
xl create "$dir/$name.cfg" >/dev/null 2>&1
domid=$(xl domid "$name")
tty=
while [ -z "$tty" ]; do
  tty=$(xenstore-read "/local/domain/$domid/console/tty" 2>/dev/null || true)
  [ -n "$tty" ] || sleep 0.05
done
# Run by sshd without a terminal, this shell leads its session: opening the
# console (no O_NOCTTY from sh) makes it the controlling terminal, whose
# hangup when the domain goes would kill the script.
trap '' HUP
stty -F "$tty" raw -echo
exec 3<>"$tty"

crc32() { printf '%s' "$1" | gzip -c | tail -c8 | head -c4 | od -An -tx4 | tr -d ' \n'; }
send() {  # kind payload
  crc=$(crc32 "$2")
  printf '@@VMLAT1 %s %d %s\n%s\n@@END %s\n' "$1" "${#2}" "$crc" "$2" "$crc" >&3
}
payload=
wait_for() {  # kind: reads lines until a frame of that kind; its payload in $payload
  while IFS= read -r -t 600 line <&3; do
    case $line in
      *"@@VMLAT1 $1 "*)
        # The payload and the @@END line. Not busybox's read: it takes a
        # byte per read(2), seconds of TCG time for the spike list's 100 KiB.
        payload=$(timeout 60 head -n 2 <&3 | head -n 1)
        return 0 ;;
    esac
  done
  echo "xen_overhead.sh: no '$1' frame" >&2
  exit 1
}

wait_for hello
t_hello=$(since)
send exec "{\"id\":1,\"argv\":[\"cyclictest\",\"-q\",\"-m\",\"-p\",\"95\",\"-i\",\"$period_us\",\"-t\",\"1\",\"-a\",\"0\",\"-D\",\"$duration\",\"-h\",\"20000\",\"--histfile=/dev/null\",\"--json=/tmp/ct.json\",\"--spike=100\",\"--spike-nodes=10000\"],\"timeout_ms\":600000}"
t_first=$(since)
wait_for exit
send exec '{"id":2,"argv":["cat","/tmp/ct.json"],"timeout_ms":20000}'
wait_for exit
case $payload in *'\"thread\"'*) ;; *) echo "xen_overhead.sh: no cyclictest JSON in the reply" >&2; exit 1 ;; esac
send shutdown '{}'
wait_for bye
exec 3<&-
# on_poweroff = "destroy": gone by itself; xl destroy if not.
i=0
while xl domid "$name" >/dev/null 2>&1 && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if xl domid "$name" >/dev/null 2>&1; then xl destroy "$name"; fi
echo "t_hello=$t_hello t_first_sample=$t_first t_done=$(since)"
