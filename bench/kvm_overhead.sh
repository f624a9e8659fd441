#!/usr/bin/env bash
# kvm_overhead.sh: the baseline of bench/kvm_overhead.py. A plain shell script
# doing what one kvm cell of `vmlat run` does, minus everything vmlat adds:
# boot QEMU on a ready guest image, wait for the agent's hello, run cyclictest
# in the guest with the cyclic probe's default argv (its spike list included:
# --spike=100 --spike-nodes=10000, whose lines come back as its stdout), read
# its JSON back, shut the guest down.
#
# Usage: kvm_overhead.sh VMLINUZ INITRD DURATION_S PERIOD_US [ACCEL]
# Prints "t_hello=<s> t_first_sample=<s> t_done=<s>" (seconds since start) on
# stdout. The channel is a QEMU pipe chardev (two FIFOs), frames are written
# with printf and their CRC32 taken from gzip's trailer; bash only.
set -euo pipefail

kernel=$1 initrd=$2 duration=$3 period_us=$4 accel=${5:-tcg}
t0=$(date +%s.%N)
since() { local now; now=$(date +%s.%N); echo "$now - $t0" | bc; }

dir=$(mktemp -d /tmp/vmlat-bench-sh.XXXXXX)
qpid=
cleanup() {
  [[ -n $qpid ]] && kill "$qpid" 2>/dev/null && wait "$qpid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
mkfifo "$dir/ch.in" "$dir/ch.out"

qemu-system-x86_64 -accel "$accel" -m 512 -smp 2 -nographic -nodefaults -monitor none -no-reboot \
  -kernel "$kernel" -initrd "$initrd" -append 'console=ttyS0 panic=-1 quiet' \
  -serial "file:$dir/console.log" -device virtio-serial-pci \
  -chardev "pipe,id=ch0,path=$dir/ch" -device virtserialport,chardev=ch0,name=org.vmlat.0 \
  </dev/null >"$dir/qemu.log" 2>&1 &
qpid=$!
exec 3<>"$dir/ch.out" 4<>"$dir/ch.in"

crc32() { printf '%s' "$1" | gzip -c | tail -c8 | head -c4 | od -An -tx4 | tr -d ' \n'; }
send() {  # kind payload
  local crc; crc=$(crc32 "$2")
  printf '@@VMLAT1 %s %d %s\n%s\n@@END %s\n' "$1" "${#2}" "$crc" "$2" "$crc" >&4
}
wait_for() {  # kind: reads frames until one of that kind; its payload in $payload
  local line end
  while IFS= read -r -t 300 line <&3; do
    if [[ $line == "@@VMLAT1 $1 "* ]]; then
      IFS= read -r -t 10 payload <&3
      IFS= read -r -t 10 end <&3
      return 0
    fi
  done
  echo "kvm_overhead.sh: no '$1' frame" >&2
  exit 1
}

wait_for hello
t_hello=$(since)
send exec "{\"id\":1,\"argv\":[\"cyclictest\",\"-q\",\"-m\",\"-p\",\"95\",\"-i\",\"$period_us\",\"-t\",\"2\",\"-a\",\"0,1\",\"-D\",\"$duration\",\"-h\",\"20000\",\"--histfile=/dev/null\",\"--json=/tmp/ct.json\",\"--spike=100\",\"--spike-nodes=10000\"],\"timeout_ms\":600000}"
t_first=$(since)
wait_for exit
send exec '{"id":2,"argv":["cat","/tmp/ct.json"],"timeout_ms":20000}'
wait_for exit
[[ $payload == *'\"thread\"'* ]] || { echo "kvm_overhead.sh: no cyclictest JSON in the reply" >&2; exit 1; }
send shutdown '{}'
wait_for bye
wait "$qpid" || true
qpid=
echo "t_hello=$t_hello t_first_sample=$t_first t_done=$(since)"
