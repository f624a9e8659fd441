"""vmlatchan: host side of the vmlat guest agent channel, for test drivers.

A small stdlib-only implementation of the vmlat frame v1 wire format
(core/include/vmlat/frame.hpp is the reference) plus a blocking request/reply
helper over a connected stream socket (QEMU's chardev socket, or the unix
socket the agent connects to with --port in host-side tests).
"""

from __future__ import annotations

import json
import select
import socket
import time
import zlib


def encode(kind: str, payload: bytes) -> bytes:
    crc = "%08x" % (zlib.crc32(payload) & 0xFFFFFFFF)
    return b"@@VMLAT1 %s %d %s\n" % (kind.encode(), len(payload), crc.encode()) + payload + \
        b"\n@@END %s\n" % crc.encode()


class Decoder:
    """Minimal incremental decoder for the vmlat frame v1 wire format."""

    MAGIC = b"@@VMLAT1 "

    def __init__(self) -> None:
        self.buf = b""
        self.errors: list[str] = []

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        self.buf += data
        out = []
        while True:
            pos = self._find_header()
            if pos < 0:
                self.buf = self.buf[-(len(self.MAGIC) - 1):]
                return out
            self.buf = self.buf[pos:]
            nl = self.buf.find(b"\n")
            if nl < 0:
                return out
            parts = self.buf[len(self.MAGIC):nl].rstrip(b"\r").split(b" ")
            try:
                kind, length, crc = parts[0].decode(), int(parts[1]), int(parts[2], 16)
            except (IndexError, ValueError):
                self.errors.append("bad header %r" % self.buf[:nl])
                self.buf = self.buf[nl + 1:]
                continue
            need = nl + 1 + length + 1 + len(b"@@END ") + 8 + 1
            if len(self.buf) < need:
                return out
            payload = self.buf[nl + 1: nl + 1 + length]
            trailer = self.buf[nl + 1 + length: need]
            if trailer != b"\n@@END %08x\n" % crc or zlib.crc32(payload) & 0xFFFFFFFF != crc:
                self.errors.append("corrupt frame %s" % kind)
                self.buf = self.buf[nl + 1:]
                continue
            self.buf = self.buf[need:]
            out.append((kind, payload))

    def _find_header(self) -> int:
        start = 0
        while True:
            pos = self.buf.find(self.MAGIC, start)
            if pos <= 0 or self.buf[pos - 1:pos] == b"\n":
                return pos
            start = pos + 1


class Channel:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.dec = Decoder()
        self.pending: list[tuple[str, dict]] = []
        self.next_id = 1

    def send(self, kind: str, obj: dict) -> None:
        self.sock.sendall(encode(kind, json.dumps(obj).encode()))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, pred, timeout: float) -> tuple[str, dict]:
        """Waits for the first frame with pred(kind, obj) true; keeps others."""
        deadline = time.monotonic() + timeout
        while True:
            for i, (k, o) in enumerate(self.pending):
                if pred(k, o):
                    del self.pending[i]
                    return k, o
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching frame within %.1fs (pending: %s)"
                                   % (timeout, [k for k, _ in self.pending]))
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError("channel closed by QEMU")
            for kind, payload in self.dec.feed(data):
                try:
                    obj = json.loads(payload)
                except ValueError:
                    obj = {"_raw": payload.decode(errors="replace")}
                self.pending.append((kind, obj))

    def run(self, argv: list[str], timeout: float = 120, **extra) -> tuple[dict, float]:
        rid = self.next_id
        self.next_id += 1
        req = {"id": rid, "argv": argv, "timeout_ms": int(timeout * 1000), "background": False}
        req.update(extra)
        t = time.monotonic()
        self.send("exec", req)
        _, obj = self.recv(lambda k, o: k in ("exit", "error") and o.get("id") == rid, timeout + 30)
        return obj, time.monotonic() - t


