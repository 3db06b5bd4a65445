"""A real security fix, live: Redis 7.0.15 and CVE-2025-32023.

scripts/redis-cve.sh builds Debian's Redis source as it was just before
0006-CVE-2025-32023.patch (the HyperLogLog out-of-bounds write).  This test
shows the bug (the input from the fix's own test kills the server), runs
the server again, makes the live patch from the .patch file with
relive-build, applies it while redis-benchmark loads the server, and checks
that the same input is now rejected, that the benchmark saw no error, and
that the keys written before the patch are intact.

Slow (a Redis build, then relive-build's two builds: a few minutes); the
Redis build is kept in the build directory (BUILD/redis-cve) between runs.
"""
import socket
import subprocess

import pytest

from conftest import BUILD, ROOT, listing, relive_ok, wait_until
from redisproto import Redis, RedisError, malicious_hll

CVE_DIR = BUILD / "redis-cve"
RELIVE_BUILD = BUILD / "relive-build"
MAKE = "make -j2 OPTIMIZATION=-O2 MALLOC=libc BUILD_TLS=no USE_SYSTEMD=no"
INVALID = RedisError("INVALIDOBJ Corrupted HLL object detected")


@pytest.fixture(scope="module")
def redis_tree():
    """The vulnerable tree, built: the user's source tree."""
    r = subprocess.run([str(ROOT / "scripts" / "redis-cve.sh"),
                        str(CVE_DIR)], capture_output=True, text=True,
                       timeout=1800)
    assert r.returncode == 0, r.stdout + r.stderr
    return CVE_DIR / "tree"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, tree):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [str(tree / "src" / "redis-server"), "--port", str(self.port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid = self.proc.pid
        self.client = Redis(self.port)

    def stop(self):
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def write_keys(r, n=500):
    for i in range(n):
        assert r.command("SET", f"pre:{i}", f"value-{i}-" + "x" * (i % 50)) \
            == "OK"


def keys_intact(r, n=500):
    got = r.command("MGET", *[f"pre:{i}" for i in range(n)])
    return got == [f"value-{i}-".encode() + b"x" * (i % 50) for i in range(n)]


def commands_processed(r):
    info = r.command("INFO", "stats").decode()
    for line in info.splitlines():
        if line.startswith("total_commands_processed:"):
            return int(line.split(":")[1])
    raise AssertionError("INFO stats has no total_commands_processed")


def test_cve_2025_32023_fixed_live_under_load(redis_tree, tmp_path):
    fix = CVE_DIR / "0006-CVE-2025-32023.patch"

    # 1. The bug: the input from the fix's own test kills the server.
    srv = Server(redis_tree)
    try:
        write_keys(srv.client)
        assert srv.client.command("SET", "hll", malicious_hll()) == "OK"
        with pytest.raises((ConnectionError, OSError)):
            srv.client.command("PFCOUNT", "hll", "hll")
        assert srv.proc.wait(timeout=60) < 0, "the server survived the input"
    finally:
        srv.stop()

    # 2. The live patch, made from the upstream fix.
    out = tmp_path / "cve-2025-32023.so"
    r = subprocess.run(
        [str(RELIVE_BUILD), "--source", str(redis_tree), "--patch", str(fix),
         "--build", MAKE, "--target", "src/redis-server", "-o", str(out)],
        capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "same code in every function" in r.stdout
    for f in ("hllSparseToDense", "hllSparseRegHisto", "hllMerge"):
        assert f"changed   function {f}" in r.stdout, r.stdout
        assert f"replaces {f} " in r.stdout, r.stdout

    # 3. The server again, with data, under load; patched meanwhile.
    srv = Server(redis_tree)
    try:
        write_keys(srv.client)
        assert srv.client.command("SET", "hll", malicious_hll()) == "OK"
        before = commands_processed(srv.client)
        bench = subprocess.Popen(
            [str(redis_tree / "src" / "redis-benchmark"), "-p",
             str(srv.port), "-n", "100000", "-c", "8", "-t", "set,get,ping",
             "--csv"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: commands_processed(srv.client) > before + 2000,
                       "redis-benchmark loading the server", timeout=120)
            relive_ok("patch", "-p", srv.pid, out)
            # The patch landed while the benchmark was still running.
            assert bench.poll() is None, "the benchmark ended before the patch"
            stdout, stderr = bench.communicate(timeout=600)
        finally:
            if bench.poll() is None:
                bench.kill()
                bench.communicate()
        assert bench.returncode == 0, stderr
        assert stderr == "", stderr
        rows = [line for line in stdout.splitlines()[1:] if line]
        assert [row.split(",")[0] for row in rows] == \
            ['"PING_INLINE"', '"PING_MBULK"', '"SET"', '"GET"'], stdout

        # 4. The input is rejected now; the server lives; data intact.
        assert srv.client.command("PFCOUNT", "hll", "hll") == INVALID
        assert srv.client.command("PFDEBUG", "GETREG", "hll") == INVALID
        assert srv.client.command("PFMERGE", "dst", "hll") == INVALID
        assert srv.client.command("PING") == "PONG"
        assert keys_intact(srv.client)
        assert srv.proc.poll() is None
        names = {f["name"] for p in listing(srv.pid)["patches"]
                 for o in p["objects"] for f in o["funcs"]}
        assert {"hllSparseToDense", "hllSparseRegHisto", "hllMerge"} <= names
    finally:
        srv.stop()
