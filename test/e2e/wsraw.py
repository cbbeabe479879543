"""A deliberately minimal raw WebSocket client over a plain socket, for the
tests that must send what a well-behaved library never sends (unmasked frames,
bad close codes, oversized frames) or must see control frames themselves."""
import base64
import os
import socket
import struct


class WSRaw:
    def __init__(self, port, path="/", headers=None, rcvbuf=None, timeout=5):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (path, port, key))
        for k, v in (headers or {}).items():
            req += "%s: %s\r\n" % (k, v)
        self.sock.sendall((req + "\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            d = self.sock.recv(4096)
            if not d:
                raise ConnectionError("closed during handshake: %r" % self.buf)
            self.buf += d
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.status = int(head.split(b" ")[1])
        self.head = head.decode(errors="replace")

    def _need(self, n):
        while len(self.buf) < n:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("connection closed")
            self.buf += d

    def recv_frame(self):
        """-> (fin, opcode, payload)"""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._need(4)
            n = struct.unpack(">H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._need(10)
            n = struct.unpack(">Q", self.buf[2:10])[0]
            off = 10
        assert not (b1 & 0x80), "server frames must not be masked"
        self._need(off + n)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv_message(self, skip_heartbeats=True):
        while True:
            fin, op, p = self.recv_frame()
            if op == 1:
                if skip_heartbeats and p.startswith(b'{"message_type":"heartbeat"'):
                    continue
                return p
            if op == 8:
                raise EOFError("close frame %r" % p)

    @staticmethod
    def frame(opcode, payload, mask=True, fin=True, length_override=None):
        b0 = (0x80 if fin else 0) | opcode
        n = len(payload) if length_override is None else length_override
        mbit = 0x80 if mask else 0
        if n < 126:
            hdr = struct.pack(">BB", b0, mbit | n)
        elif n < 65536:
            hdr = struct.pack(">BBH", b0, mbit | 126, n)
        else:
            hdr = struct.pack(">BBQ", b0, mbit | 127, n)
        if not mask:
            return hdr + payload
        key = os.urandom(4)
        return hdr + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))

    def send(self, data):
        self.sock.sendall(data)

    def expect_close(self, timeout=5):
        """Reads until a close frame; returns its code (None if the TCP connection just ended).
        The close frame's reason (bytes) is left in self.close_reason; the
        text messages read on the way are counted in self.skipped."""
        self.sock.settimeout(timeout)
        self.close_reason = None
        self.skipped = 0
        try:
            while True:
                fin, op, p = self.recv_frame()
                if op == 8:
                    self.close_reason = p[2:]
                    return struct.unpack(">H", p[:2])[0] if len(p) >= 2 else 1005
                if op == 1:
                    self.skipped += 1
        except (EOFError, ConnectionResetError):
            return None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
