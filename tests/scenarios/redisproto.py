"""A tiny Redis client for the scenario tests that patch a real Redis server
(the standard library only: the suite installs no Redis client package).

    r = Redis(port)
    r.command("SET", "k", b"\\x00\\xff")   -> "OK"
    r.command("GET", "k")                -> b"\\x00\\xff"
    r.command("INCR", "k")               -> RedisError("ERR value is not ...")

A command is sent as RESP: an array of bulk strings, each argument bytes or
str (UTF-8), so binary and large payloads (hundreds of KB) go through as
they are.  Replies: simple string -> str, error -> a RedisError returned
(not raised: a test compares it), integer -> int, bulk string -> bytes,
null bulk or array -> None, array -> list.  A server that closes the
connection, or dies, raises ConnectionError (EOF) or OSError from
command().

malicious_hll() is the corrupted sparse HyperLogLog of the upstream test for
CVE-2025-32023 ("Corrupted sparse HyperLogLogs doesn't cause overflow and
out-of-bounds with XZERO opcode", tests/unit/hyperloglog.tcl).
"""
import socket
import time


class RedisError(Exception):
    """An error reply; message is its text without the leading "-"."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message

    def __eq__(self, other):
        return isinstance(other, RedisError) and other.message == self.message

    def __hash__(self):
        return hash(self.message)

    def __repr__(self):
        return f"RedisError({self.message!r})"


class Redis:
    """One connection to 127.0.0.1:port.  connect_timeout: seconds during
    which a refused connection is tried again (a server just started may not
    listen yet); timeout: seconds to wait for each reply."""

    def __init__(self, port, host="127.0.0.1", timeout=30.0,
                 connect_timeout=10.0):
        deadline = time.monotonic() + connect_timeout
        while True:
            try:
                self.sock = socket.create_connection((host, port),
                                                     timeout=timeout)
                break
            except ConnectionRefusedError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = self.sock.makefile("rb")

    def close(self):
        self.rfile.close()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def command(self, *args):
        """Sends one command, returns its reply."""
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode()
            elif isinstance(a, int):
                a = b"%d" % a
            parts.append(b"$%d\r\n" % len(a))
            parts.append(a)
            parts.append(b"\r\n")
        self.sock.sendall(b"".join(parts))
        return self._reply()

    def _line(self):
        line = self.rfile.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed by the server"
                                  + (f" after {line!r}" if line else ""))
        return line[:-2]

    def _exactly(self, n):
        data = self.rfile.read(n)
        if len(data) != n:
            raise ConnectionError("connection closed by the server")
        return data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode(errors="replace")
        if kind == b"-":
            return RedisError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self._exactly(n + 2)
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self._reply() for _ in range(n)]
        raise ValueError(f"not a RESP reply: {line!r}")


def malicious_hll():
    """The corrupted sparse HyperLogLog of the XZERO test of the fix of
    CVE-2025-32023: a header that says "sparse", then 132072 XZERO opcodes
    of the longest run (16384 registers each, more than 2^31 in all: the
    register index, an int, wraps to about -2^31), then a VAL opcode (value
    32, run 4) that sets registers at that index.  PFCOUNT hll hll on a
    vulnerable server writes about 2 GB below PFCOUNT's array on the stack
    (hllMerge), which kills it with SIGSEGV; a fixed one answers
    "INVALIDOBJ Corrupted HLL object detected".  PFCOUNT of the one key
    answers 0 either way: the header's cached cardinality (0) is valid.
    """
    # "HYLL", then Tcl's [binary format c12 {1 0 0 0 0 0 0 0 0 0 0 0}]:
    # encoding 1 (HLL_SPARSE), 3 unused bytes, 8 bytes of cached
    # cardinality.
    header = b"HYLL" + bytes([1] + [0] * 11)
    runlen = 16384 - 1
    xzero = bytes([0b01000000 | (runlen >> 8), runlen & 0xff])
    return header + xzero * (131072 + 1000) + bytes([0b11111111])
