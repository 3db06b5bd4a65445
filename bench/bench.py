#!/usr/bin/env python3
"""bench/bench.py - relive's benchmarks (make bench, scripts/bench.sh).

    bench.py BUILD_DIR [--quick] [--docs] [--only NAMES]

Runs every benchmark against the programs of BUILD_DIR (bench/, examples/
and relive itself), prints one table of every figure with its unit, its
spread and its target, and writes BUILD_DIR/bench.json (the same figures
and the raw samples), BUILD_DIR/bench.md (the table in Markdown) and
BUILD_DIR/bench.png (patch time and pause against threads and functions).
--docs also copies the table and the plot into docs/performance.md and
docs/performance.png.  --quick runs fewer repetitions (for a smoke test).

Every timing is the median of repeated runs, shown with its min and max;
every ratio is measured side by side in one process (the variants
alternate, round after round) and is the median of the per-round ratios.
Figures that miss their target are reported as missed: nothing is retried
until it passes.
"""
import argparse
import json
import os
import platform
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def spread(xs):
    return {"min": min(xs), "max": max(xs), "n": len(xs)} if xs else {}


class Proc:
    """A target speaking a line protocol on stdin/stdout; the first line
    it prints is "ready PID" (or, for the server, "listening on ...")."""

    def __init__(self, argv, first="ready", env=None):
        self.argv = argv
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, env=env)
        self.buf = b""
        line = self.readline(30)
        if not line.startswith(first):
            raise RuntimeError("%s: unexpected first line %r" % (argv[0], line))
        self.first = line
        self.pid = self.p.pid

    def readline(self, timeout=120):
        deadline = time.monotonic() + timeout
        fd = self.p.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("%s: no answer in %gs" % (self.argv[0], timeout))
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError("%s exited" % self.argv[0])
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def cmd(self, line, timeout=120):
        self.p.stdin.write((line + "\n").encode())
        self.p.stdin.flush()
        ans = self.readline(timeout)
        if ans.startswith("error"):
            raise RuntimeError("%s: %s -> %s" % (self.argv[0], line, ans))
        return ans

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()
        for f in (self.p.stdin, self.p.stdout):
            try:
                f.close()
            except OSError:
                pass


# Runs of each server under load (a fresh server each).  One second's
# throughput moves by 5-10% by itself on a 2-CPU machine (the control row),
# so the median of three runs still landed on either side of 95% by that
# noise alone; five narrow it.
LOAD_RUNS = 5
# More runs, at most, when the machine held relive's start until the load
# had ended (load_series).
LOAD_RETRIES = 5


class Bench:
    def __init__(self, build, quick):
        self.build = os.path.abspath(build)
        self.quick = quick
        self.relive_bin = os.path.join(self.build, "relive")
        self.rows = []
        self.raw = {}
        self.problems = []
        self.warnings = []

    def path(self, *p):
        return os.path.join(self.build, *p)

    def relive(self, *args, timeout=180):
        """Runs relive; returns (exit status, wall seconds, output).  The
        CPU seconds it used (user + system) are left in self.last_cpu.
        Its output goes to a file, read once it exited: read from a pipe,
        each line of `relive -v` woke this process while relive worked,
        on the same 2 CPUs as the target's threads.  Side by side, 40
        runs each of the 1ms-sleeper pause: the median sleeper's longest
        gap was 0.138 ms with -v through a pipe, 0.115 ms through a file,
        0.113 ms without -v.
        The wait is a blocking waitpid: subprocess's wait with a timeout
        polls with growing sleeps, which rounded every wall time up to
        about 32 or 64 ms; an alarm kills relive at the timeout instead
        (no thread of ours wakes meanwhile)."""
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        with tempfile.TemporaryFile() as out:
            t0 = time.monotonic()
            p = subprocess.Popen([self.relive_bin] + [str(a) for a in args],
                                 stdout=out, stderr=subprocess.STDOUT)
            old = signal.signal(signal.SIGALRM, lambda *_: p.kill())
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                rc = p.wait()
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old)
            wall = time.monotonic() - t0
            out.seek(0)
            text = out.read().decode(errors="replace")
        if wall >= timeout:
            raise RuntimeError("relive %s: killed after %d s:\n%s" %
                               (" ".join(map(str, args)), timeout, text))
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.last_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        return rc, wall, text

    def must(self, want, *args, **kw):
        rc, wall, out = self.relive(*args, **kw)
        if rc != want:
            raise RuntimeError("relive %s: exit %d, expected %d:\n%s" %
                               (" ".join(map(str, args)), rc, want, out))
        return wall

    def row(self, fig, name, value, unit, target=None, ok=None, sp=None,
            note=""):
        """target: (op, limit) with op '<=' or '>=', or None."""
        if target is not None and ok is None:
            op, lim = target
            ok = value <= lim if op == "<=" else value >= lim
        r = {"figure": fig, "name": name, "value": value, "unit": unit,
             "target": "%s %s" % target if target else "",
             "ok": ok, "spread": sp or {}, "note": note}
        self.rows.append(r)
        self.show(r)
        return r

    @staticmethod
    def fmt(v):
        if isinstance(v, str):
            return v
        if v != v:
            return "nan"
        a = abs(v)
        if a >= 100 or v == int(v):
            return "%.0f" % v
        if a >= 10:
            return "%.1f" % v
        if a >= 1:
            return "%.2f" % v
        return "%.3f" % v

    def fmt_value(self, r):
        """A row's value, with more digits when rounding would show it
        equal to its target's limit (94.97 against >= 95 is not 95.0)."""
        text = self.fmt(r["value"])
        if r["target"] and isinstance(r["value"], float):
            lim = float(r["target"].split()[1])
            if float(text) == lim and r["value"] != lim:
                text = "%.6g" % r["value"]
        return text

    def spread_str(self, sp):
        if "min" in sp:
            return "[%s..%s] n=%d" % (self.fmt(sp["min"]), self.fmt(sp["max"]), sp["n"])
        return ""

    def show(self, r):
        ok = "" if r["ok"] is None else ("yes" if r["ok"] else "NO")
        print("  %-3s %-52s %10s %-6s %-24s %-10s %s" % (
            r["figure"], r["name"], self.fmt_value(r), r["unit"],
            self.spread_str(r["spread"]), r["target"], ok), flush=True)

    # ------------------------------------------------------------------
    # 1 and 2: the cost of a call, steady state and during a transition.

    @staticmethod
    def parse_run(ans):
        out = {}
        for tok in ans.split():
            k, v = tok.split("=", 1)
            if k in ("r", "q", "p"):
                out[{"r": "ratios", "q": "ratios2", "p": "ratios13"}[k]] = [
                    float(x) for x in v.split("/")]
            elif k.startswith("R"):  # a variant's per-round times
                out[k] = [float(x) for x in v.split("/")]
            else:
                med, lo, hi, ret = v.split(",")
                out[k] = {"ns": float(med), "min": float(lo),
                          "max": float(hi), "ret": int(ret)}
        return out

    def ratio_row(self, fig, name, run, target, key="ratios"):
        rs = run[key]
        return self.row(fig, name, median(rs), "ratio", target,
                        sp=spread(rs))

    @staticmethod
    def round_ratios(run, a, b):
        """The per-round ratios of variants a and b of one run."""
        return [x / y for x, y in zip(run["R" + a], run["R" + b])]

    def transition_run(self, t, reps, n):
        """In target t, with calls_k patched and its library loaded: holds
        the transition of calls_fgh open (P parked in the old bench_g, U
        inside the old bench_h; S and main are in system calls outside the
        patch, so relive switches them) and times the calls of the
        switched thread S and of the unswitched thread U against the
        steady call (calls_k) in the same thread.  Leaves the transition
        open.  Returns (S's run, U's run)."""
        k_so = self.path("bench", "calls_k.so")
        fgh_so = self.path("bench", "calls_fgh.so")
        self.must(0, "patch", "-p", t.pid, k_so)
        t.cmd("load " + os.path.realpath(k_so))
        t.cmd("park")
        t.cmd("uenter")
        rc, wall, out = self.relive("patch", "-p", t.pid, fgh_so,
                                    "--timeout", "1")
        if rc != 3:
            raise RuntimeError("calls_fgh: expected exit 3 (transition "
                               "held open), got %d:\n%s" % (rc, out))
        s = self.parse_run(t.cmd("run S fkc %d %d" % (reps, n), 600))
        u = self.parse_run(t.cmd("run U fkc %d %d" % (reps, n), 600))
        if (s["f"]["ret"], u["f"]["ret"], s["k"]["ret"], s["c"]["ret"],
                u["c"]["ret"]) != (2, 1, 2, 2, 1):
            self.problems.append(
                "during the transition the switched thread ran %s "
                "bench_f and the unswitched one %s (expected new, old)"
                % ("new" if s["f"]["ret"] == 2 else "old",
                   "new" if u["f"]["ret"] == 2 else "old"))
        return s, u

    # How many processes the transition is timed in.  Within one process
    # its ratios are steady from round to round, but they move from one
    # process to the next (0.84 to 1.68 for the unswitched thread in four
    # runs of the benchmark, each within +-0.1 of its own median): where
    # the stubs, the copies and the calling loop land in memory changes
    # what a call costs.  The figure is the median over processes.
    TRANSITION_PROCS = 5

    def fig_calls(self):
        reps, n = (11, 1000000) if self.quick else (31, 3000000)
        fgh_so = self.path("bench", "calls_fgh.so")
        runs = []
        t = Proc([self.path("bench", "calls")])
        try:
            # 2: the transition, in this process and in the others below.
            runs.append(self.transition_run(t, reps, n))
            lst = json.loads(self.relive("list", "-p", t.pid, "--json")[2])
            self.raw["transition_list"] = lst
            t.cmd("release")
            self.must(0, "wait", "-p", t.pid, "--timeout", "30")
            t.cmd("load " + os.path.realpath(fgh_so))
            # 1: steady state, side by side in one thread.  A direct call
            # of bench_f (bench_loop_f's, made direct by relive) against
            # the same loop calling bench_f_v2 from a copy the target made
            # beside the executable's code (D: the same distance from
            # bench_f_v2), and from one near bench_f_v2 (C, shown beside
            # it); through a function pointer, the patched bench_f (its
            # entry jumps to the new version) against a call of bench_f_v2
            # through a pointer; and, as that one's floor, a call through a
            # jmp the target wrote by itself to the new version.
            m = self.parse_run(t.cmd("run main cDCfFJ %d %d" % (reps, n),
                                     600))
            self.raw["steady"] = m
            if (m["c"]["ret"], m["D"]["ret"], m["C"]["ret"], m["f"]["ret"],
                    m["F"]["ret"], m["J"]["ret"]) != (2, 2, 2, 2, 2, 2):
                self.problems.append("steady state: wrong versions ran: %s" % m)
            lst = json.loads(self.relive("list", "-p", t.pid, "--json")[2])
            funcs = [f for p in lst["patches"] for o in p["objects"]
                     for f in o["funcs"]]
            if not all(f["direct"] for f in funcs):
                self.problems.append("steady state: an entry is not direct: "
                                     "%s" % lst)
            if not any(f["name"] == "bench_f" and f["direct_calls"] >= 1
                       for f in funcs):
                self.problems.append("steady state: bench_loop_f's call of "
                                     "bench_f is not direct: %s" % lst)
        finally:
            t.close()
        for _ in range(1 if self.quick else self.TRANSITION_PROCS - 1):
            t = Proc([self.path("bench", "calls")])
            try:
                runs.append(self.transition_run(t, reps, n))
            finally:
                t.close()
        self.raw["transition"] = [{"switched": s, "unswitched": u}
                                  for s, u in runs]
        # The same steady state with the entries left on their stubs
        # (RELIVE_NO_DIRECT), for comparison.
        t = Proc([self.path("bench", "calls")],
                 env=dict(os.environ, RELIVE_NO_DIRECT="1"))
        try:
            self.must(0, "patch", "-p", t.pid, fgh_so)
            t.cmd("load " + os.path.realpath(fgh_so))
            st = self.parse_run(t.cmd("run main fF %d %d" % (reps, n), 600))
            self.raw["steady_stub"] = st
            if (st["f"]["ret"], st["F"]["ret"]) != (2, 2):
                self.problems.append("steady state on the stub: wrong "
                                     "versions ran: %s" % st)
        finally:
            t.close()
        ns = lambda d: (d["ns"], {"min": d["min"], "max": d["max"], "n": reps})
        m["ratios_cD"] = self.round_ratios(m, "c", "D")
        m["ratios_cC"] = self.round_ratios(m, "c", "C")
        m["ratios_fF"] = self.round_ratios(m, "f", "F")
        m["ratios_JF"] = self.round_ratios(m, "J", "F")
        m["ratios_fJ"] = self.round_ratios(m, "f", "J")
        self.ratio_row("1", "steady: patched call / direct call to new", m,
                       ("<=", 1.05), key="ratios_cD")
        self.ratio_row("1", "steady: patched call / direct call to new "
                       "from 1 MiB away", m, None, key="ratios_cC")
        self.ratio_row("1", "steady, through a pointer: patched / to new",
                       m, None, key="ratios_fF")
        self.ratio_row("1", "floor, no relive: via a jmp to new / to new",
                       m, None, key="ratios_JF")
        self.ratio_row("1", "steady, through a pointer: patched / via jmp",
                       m, None, key="ratios_fJ")
        self.ratio_row("1", "steady, entry left on the stub: patched / "
                       "direct", st, None)
        for key, what in (("c", "steady: patched direct call"),
                          ("D", "steady: direct call to the new function"),
                          ("C", "steady: the same, from 1 MiB away"),
                          ("f", "steady: patched call through a pointer"),
                          ("F", "steady: call to new through a pointer"),
                          ("J", "floor: call via a jmp the target wrote")):
            v, sp = ns(m[key])
            self.row("1", what, v, "ns", sp=sp)
        # Per process: the median of its rounds; the figure: the median
        # of those, with their spread over the processes.
        for i, (what, target) in enumerate((
                ("transition: switched thread / steady call", ("<=", 1.5)),
                ("transition: unswitched thread / steady call", ("<=", 1.5)))):
            per = [median(r[i]["ratios"]) for r in runs]
            self.row("2", what, median(per), "ratio", target,
                     sp=spread(per))
        for key, i, what in (("f", 0, "transition: call by switched thread"),
                             ("f", 1, "transition: call by unswitched thread"),
                             ("k", 0, "transition: steady call (same thread)"),
                             ("c", 0, "transition: direct call, switched"),
                             ("c", 1, "transition: direct call, unswitched")):
            per = [r[i][key]["ns"] for r in runs]
            self.row("2", what, median(per), "ns", sp=spread(per))

    # ------------------------------------------------------------------
    # Pause: the longest time a thread is held still.

    @staticmethod
    def parse_gaps(ans):
        m = re.match(r"max=([0-9,]*) hist=([0-9,]*)", ans)
        gaps = [int(x) / 1e6 for x in m.group(1).split(",") if x]
        hist = [int(x) for x in m.group(2).split(",")]
        return gaps, hist  # ms

    @staticmethod
    def hold_ms(log):
        """The all-threads holds in a `relive -v` log: the time from each
        "holding every thread" to the next "threads released", in ms."""
        holds, start = [], None
        for line in log.splitlines():
            m = re.match(r"relive: \[\s*([0-9.]+) ms\] (.*)", line)
            if not m:
                continue
            if m.group(2).startswith("holding every thread"):
                start = float(m.group(1))
            elif m.group(2) == "threads released" and start is not None:
                holds.append(float(m.group(1)) - start)
                start = None
        return holds

    @staticmethod
    def one_hold_ms(log):
        """The longest hold of a single thread by the transition, over the
        passes of a `relive -v` log, in ms (0 if none was logged)."""
        found = re.findall(r"longest hold of one thread ([0-9.]+) us", log)
        return max((float(x) / 1e3 for x in found), default=0.0)

    def cycle(self, t, so, name, settle, undo=True, holds=None, one=None):
        """reset, relive patch, settle, read; then (undo) disable and
        remove.  Returns (patch wall seconds, per-thread max gaps in ms,
        histogram).  holds: a list that gets the all-threads holds of the
        patch (relive -v); one: a list that gets its longest hold of a
        single thread."""
        t.cmd("reset")
        if holds is None:
            wall = self.must(0, "patch", "-p", t.pid, so)
        else:
            rc, wall, out = self.relive("patch", "-v", "-p", t.pid, so)
            if rc != 0:
                raise RuntimeError("relive patch: exit %d:\n%s" % (rc, out))
            holds.extend(self.hold_ms(out))
            if one is not None:
                one.append(self.one_hold_ms(out))
        time.sleep(settle)
        gaps, hist = self.parse_gaps(t.cmd("read"))
        if undo:
            self.must(0, "disable", "-p", t.pid, name)
            self.must(0, "remove", "-p", t.pid, name)
        return wall, gaps, hist

    def baseline(self, t, interval):
        t.cmd("reset")
        time.sleep(interval)
        return self.parse_gaps(t.cmd("read"))

    def launch_baseline(self, t, interval):
        """The same interval, in which the smallest program there is gets
        started the way relive is: what starting any command costs the
        target's threads (a process's start-up runs before it can give
        way to them, common/background.c).  Returns the gaps (ms)."""
        t.cmd("reset")
        start = time.monotonic()
        subprocess.run(["/bin/true"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, check=True)
        left = interval - (time.monotonic() - start)
        if left > 0:
            time.sleep(left)
        return self.parse_gaps(t.cmd("read"))[0]

    def load_floor(self, so, args, interval):
        """A fresh process like the patched one, whose main thread loads
        the patch itself (dlopen, no relive), measured over the same
        interval: what mapping and relocating the patch's code costs the
        target's threads, which no live patcher avoids.  Returns the gaps
        (ms)."""
        t = self.many(*args, preload=True)
        try:
            t.cmd("reset")
            start = time.monotonic()
            ans = t.cmd("dlopen " + so)
            if not ans.startswith("ok"):
                raise RuntimeError("bench/many: dlopen %s: %s" % (so, ans))
            left = interval - (time.monotonic() - start)
            if left > 0:
                time.sleep(left)
            return self.parse_gaps(t.cmd("read"))[0]
        finally:
            t.close()

    # How long a target of bench/many runs before it is measured.  Its
    # threads start together, so for its first tens of milliseconds their
    # 1 ms sleeps end together and the scheduler still places them: a
    # patch made 0 ms after the start gave a median sleeper's longest gap
    # of 0.265 ms, one made 50, 100 or 300 ms after it 0.129, 0.135 and
    # 0.120 ms (16 fresh processes each, same build).  A service is patched
    # long after it started; the figures measure relive, not that start.
    WARM_S = 0.3

    def many(self, nspin, nsleep, nblock, preload=False):
        argv = [self.path("bench", "many"), str(nspin), str(nsleep), str(nblock)]
        if preload:
            argv = [self.relive_bin, "run", "--"] + argv
        t = Proc(argv)
        time.sleep(self.WARM_S)
        return t

    def fig_pause(self):
        """Each run: a fresh process started by relive run (agent loaded,
        no function patched yet), the patch, then the same interval
        without patching, in the same process.  The interval ends 5 ms
        after relive exits for the sleepers (each has woken and recorded
        its lateness by then; 50 ms more only added the machine's own
        noise to both figures), 0.3 s after for the spinners (64 of them
        on 2 CPUs take that long to all run again).  For the sleepers,
        two floors over the same interval: /bin/true started (what any
        command costs), and a fresh process that loads the patch itself
        (what the patch's code costs, with no relive)."""
        so = self.path("bench", "many100.so")
        for mode, args, settle, runs in (("spin", (64, 0, 0), 0.3, 3),
                                         ("sleep", (0, 64, 0), 0.005, 9)):
            if self.quick:
                runs = 1 if mode == "spin" else 2
            res = {"patch": [], "base": [], "hold_all_ms": [],
                   "hold_one_ms": []}
            for _ in range(runs):
                t = self.many(*args, preload=True)
                hold = []
                try:
                    wall, gaps, hist = self.cycle(t, so, "many100", settle,
                                                  undo=False, holds=hold,
                                                  one=res["hold_one_ms"])
                    res["hold_all_ms"].append(max(hold) if hold else 0.0)
                    bgaps, bhist = self.baseline(t, wall + settle)
                    if mode == "sleep":
                        res.setdefault("launch", []).append(
                            self.launch_baseline(t, wall + settle))
                finally:
                    t.close()
                if mode == "sleep":
                    res.setdefault("load", []).append(
                        self.load_floor(so, args, wall + settle))
                res["patch"].append((wall, gaps, hist))
                res["base"].append((wall + settle, bgaps, bhist))
            self.raw["pause_" + mode] = res
            lbl = "64 %s threads" % ("spinning" if mode == "spin" else "1ms-sleep")
            pm = [median(g) for _, g, _ in res["patch"]]
            px = [max(g) for _, g, _ in res["patch"]]
            bm = [median(g) for _, g, _ in res["base"]]
            bx = [max(g) for _, g, _ in res["base"]]
            walls = [w * 1e3 for w, _, _ in res["patch"]]
            self.row("3", "pause %s: median thread max" % lbl, median(pm),
                     "ms", ("<=", 0.2), sp=spread(pm))
            self.row("3", "pause %s: max" % lbl, median(px), "ms",
                     ("<=", 1), sp=spread(px))
            self.row("3", "  same interval, no patch: median thread max",
                     median(bm), "ms", sp=spread(bm))
            self.row("3", "  same interval, no patch: max", median(bx), "ms",
                     sp=spread(bx))
            self.row("3", "  difference (patch - no patch): max",
                     median(px) - median(bx), "ms")
            for key, what in (("launch", "/bin/true run"),
                              ("load", "patch dlopen")):
                if key not in res:
                    continue
                fm = [median(g) for g in res[key]]
                fx = [max(g) for g in res[key]]
                self.row("3", "  same interval, %s: median thread max" % what,
                         median(fm), "ms", sp=spread(fm))
                self.row("3", "  same interval, %s: max" % what, median(fx),
                         "ms", sp=spread(fx))
            self.row("3", "  relive patch wall time meanwhile", median(walls),
                     "ms", sp=spread(walls))
            ha = res["hold_all_ms"]
            self.row("3", "  all threads held at once (relive -v)",
                     median(ha), "ms", sp=spread(ha))
            ho = res["hold_one_ms"]
            self.row("3", "  longest hold of one thread (relive -v)",
                     median(ho), "ms", sp=spread(ho))

    # ------------------------------------------------------------------
    # Time to take effect, and scale.

    def fig_effect(self):
        runs = 3 if self.quick else 5
        so = self.path("bench", "many100.so")
        first, pfirst = [], []
        for _ in range(runs):
            t = self.many(0, 4, 60)
            try:
                wall, gaps, _ = self.cycle(t, so, "many100", 0.02, undo=False)
            finally:
                t.close()
            first.append(wall * 1e3)
            pfirst.append(max(gaps))
        # The agent loaded by a first patch + disable + remove of the same
        # patch: its stubs and relocated copies exist already.
        again, pagain = [], []
        t = self.many(0, 4, 60)
        try:
            self.cycle(t, so, "many100", 0.02)
            for _ in range(runs):
                wall, gaps, _ = self.cycle(t, so, "many100", 0.02)
                again.append(wall * 1e3)
                pagain.append(max(gaps))
        finally:
            t.close()
        self.raw["effect"] = {"first_ms": first, "first_pause_ms": pfirst,
                              "again_ms": again, "again_pause_ms": pagain}
        self.row("4", "patch wall, 64 idle threads, 100 funcs, +injection",
                 median(first), "ms", ("<=", 100), sp=spread(first))
        self.row("4", "  pause max meanwhile", median(pfirst), "ms",
                 sp=spread(pfirst))
        self.row("4", "patch wall, same, after patch+disable+remove",
                 median(again), "ms", ("<=", 100), sp=spread(again))
        self.row("4", "  pause max meanwhile", median(pagain), "ms",
                 sp=spread(pagain))
        # Agent preloaded by relive run: the 64 threads, 100 functions
        # point of the function scale below.

    def scale_point(self, nthreads, nfuncs, runs):
        """Fresh processes started by relive run: the first time these
        functions are patched, agent already loaded."""
        nsleep = min(4, nthreads)
        name = "many%d" % nfuncs
        so = self.path("bench", name + ".so")
        walls, pauses = [], []
        for _ in range(runs):
            t = self.many(0, nsleep, nthreads - nsleep, preload=True)
            try:
                wall, gaps, _ = self.cycle(t, so, name, 0.02, undo=False)
            finally:
                t.close()
            walls.append(wall * 1e3)
            pauses.append(max(gaps))
        return walls, pauses

    def linear_rows(self, fig, what, xs, walls):
        """Marginal cost per unit on each segment.  Growth is no worse than
        linear when the last segment costs per unit at most twice the
        average per-unit cost from the smallest point to the one before
        the last (robust to noise at the small points)."""
        meds = [median(w) for w in walls]
        slopes = [(meds[i + 1] - meds[i]) / (xs[i + 1] - xs[i])
                  for i in range(len(xs) - 1)]
        for i, s in enumerate(slopes):
            self.row(fig, "  cost per %s, %d..%d" % (what, xs[i], xs[i + 1]),
                     s * 1e3, "us")
        before = max((meds[-2] - meds[0]) / (xs[-2] - xs[0]), 1e-9)
        self.row(fig, "  growth: per-%s cost %d..%d / %d..%d" %
                 (what, xs[-2], xs[-1], xs[0], xs[-2]),
                 slopes[-1] / before, "ratio", ("<=", 2.0))

    def fig_scale(self):
        runs = 2 if self.quick else 3
        threads = [1, 16, 256, 1024]
        funcs = [1, 100, 1000, 10000]
        tw, tp = [], []
        for n in threads:
            w, p = self.scale_point(n, 100, runs)
            tw.append(w)
            tp.append(p)
            self.row("5", "patch wall, %4d threads, 100 funcs" % n, median(w),
                     "ms", sp=spread(w))
            self.row("5", "pause max,  %4d threads, 100 funcs" % n, median(p),
                     "ms", sp=spread(p))
        self.linear_rows("5", "thread", threads, tw)
        fw, fp = [], []
        for n in funcs:
            w, p = self.scale_point(64, n, runs)
            fw.append(w)
            fp.append(p)
            if n == 100:
                self.row("4", "patch wall, 64 idle threads, 100 funcs, relive run",
                         median(w), "ms", ("<=", 100), sp=spread(w))
            self.row("5", "patch wall, 64 threads, %5d funcs" % n, median(w),
                     "ms", sp=spread(w))
            self.row("5", "pause max,  64 threads, %5d funcs" % n, median(p),
                     "ms", sp=spread(p))
        self.linear_rows("5", "function", funcs, fw)
        self.raw["scale"] = {
            "threads": [{"n": n, "wall_ms": w, "pause_ms": p}
                        for n, w, p in zip(threads, tw, tp)],
            "funcs": [{"n": n, "wall_ms": w, "pause_ms": p}
                      for n, w, p in zip(funcs, fw, fp)]}

    # ------------------------------------------------------------------
    # 6: the example server under a closed-loop load.

    def load_run(self, lbl, pid, port, patch, request, old, new, close):
        """A closed-loop load on port; `relive patch` of pid with patch
        after a few seconds; returns what one run measured.  close() stops
        the server."""
        # The patch starts half a second into one of loadgen's seconds, so
        # that it (tens of ms) lies within that second.  Started on the
        # boundary, as it was, it straddled two seconds and the figure
        # took the lower of both, a second's noise more than the patch.
        secs, at = (5.0, 3.5) if self.quick else (8.0, 5.5)
        try:
            lg = subprocess.Popen(
                [self.path("bench", "loadgen"), str(port), "4", str(secs),
                 request, old, new], stdout=subprocess.PIPE)
            # A control, started a second before the patch, beside it:
            # how long the machine takes to start any program under this
            # load (/bin/true).  On a machine whose kernel threads starve
            # under load, an exec can wait seconds for a lock on libc's
            # mappings held by one of them, relive's exec as well
            # (docs/performance.md, round 24).
            ctl = {}

            def control():
                t0 = time.monotonic()
                subprocess.run(["/bin/true"], check=True)
                ctl["wall"] = time.monotonic() - t0

            ctl_thread = threading.Thread(target=control)
            time.sleep(at - 1.0)
            ctl_thread.start()
            time.sleep(1.0)
            p0 = time.monotonic()
            rc, wall, out = self.relive("patch", "-p", pid, patch)
            p1 = time.monotonic()
            cpu = self.last_cpu
            lout = lg.communicate(timeout=secs + 30)[0].decode()
            ctl_thread.join()
            true_wall = ctl["wall"]
        finally:
            close()
        if rc != 0:
            raise RuntimeError("relive patch of %s: exit %d:\n%s" %
                               (lbl, rc, out))
        vals = dict(l.split(" ", 1) for l in lout.strip().splitlines())
        start = int(vals["start"]) / 1e9
        buckets = [int(x) for x in vals["buckets"].split(",")]
        answers = {}
        for a in (old, new):
            m = re.search(re.escape(a) + r"=(\d+)", vals["answers"])
            answers[a] = int(m.group(1)) if m else 0
        per_sec = [sum(buckets[i:i + 10]) for i in range(0, len(buckets) - 9, 10)]
        k0, k1 = int((p0 - start) // 1), int((p1 - start) // 1)
        before = per_sec[1:k0]            # second 0 is warm-up
        b0, b1 = int((p0 - start) // 0.1), int((p1 - start) // 0.1)
        return {"per_second": per_sec, "buckets": buckets,
                "patch_at_s": [p0 - start, p1 - start],
                # relive done only once the load had ended: nothing of it
                # ran under the load (load_series)
                "after_load": p1 - start >= secs,
                "failures": int(vals["failures"]), "answers": answers,
                "patch_wall_s": wall, "cpu_s": cpu,
                "true_wall_s": true_wall,
                "pct": 100.0 * min(per_sec[k0:k1 + 1]) / median(before),
                # the same figure for the second before, with no patch: how
                # much one second moves by itself
                "control_pct": 100.0 * per_sec[k0 - 1] / median(before),
                "before": median(before),
                "worst_bucket_pct": 100.0 * min(buckets[b0:b1 + 1]) /
                median(buckets[10:b0])}

    def load_series(self, lbl, start, patch, request, old, new):
        """LOAD_RUNS runs of load_run on servers that start() starts.  A
        run whose `relive patch` ended only after the load had, with no
        patched answer in it, measured nothing of relive: the machine held
        relive's start (fork and exec) until the load ended.  That happens
        to any program started under this load, /bin/true as well
        (docs/performance.md, round 27), so such a run is set aside,
        counted and kept in the JSON, and another is made, up to
        LOAD_RETRIES more.  A run with no patched answer where relive was
        done during the load is a problem."""
        runs, held = [], []
        want = 1 if self.quick else LOAD_RUNS
        while len(runs) < want and len(held) <= LOAD_RETRIES:
            pid, port, close = start()
            r = self.load_run(lbl, pid, port, patch, request, old, new,
                              close)
            if r["answers"][new]:
                runs.append(r)
            elif r["after_load"]:
                held.append(r)
            else:
                self.problems.append("%s never gave the patched answer" %
                                     lbl)
                runs.append(r)
        if len(runs) < want:
            self.problems.append(
                "%s: %d of %d runs held relive's start until the load "
                "had ended" % (lbl, len(held), len(held) + len(runs)))
        return runs, held

    def load_rows(self, key, lbl, runs, held):
        self.raw[key] = runs
        self.raw[key + "_held"] = held
        if not runs:
            return
        pct = [r["pct"] for r in runs]
        self.row("6", "%s: throughput in patch second / median before" % lbl,
                 median(pct), "%", (">=", 95), sp=spread(pct))
        ctl = [r["control_pct"] for r in runs]
        self.row("6", "  control: the second before it / median before",
                 median(ctl), "%", sp=spread(ctl))
        self.row("6", "%s: failed requests (all runs)" % lbl,
                 sum(r["failures"] for r in runs), "req", ("<=", 0))
        self.row("6", "%s: throughput before (median second)" % lbl,
                 median([r["before"] for r in runs]), "req/s")
        self.row("6", "%s: worst 100ms bucket in patch / median" % lbl,
                 median([r["worst_bucket_pct"] for r in runs]), "%")
        w = [1e3 * r["patch_wall_s"] for r in runs]
        self.row("6", "%s: relive patch wall (first injection)" % lbl,
                 median(w), "ms", sp=spread(w))
        self.row("6", "%s: CPU time used by relive meanwhile" % lbl,
                 median([1e3 * r["cpu_s"] for r in runs]), "ms")
        tw = [1e3 * r["true_wall_s"] for r in runs]
        self.row("6", "  control: /bin/true started 1 s before, wall",
                 median(tw), "ms", sp=spread(tw))
        self.row("6", "  runs set aside: relive started after the load "
                 "ended", len(held), "runs")

    def fig_load(self):
        def start():
            srv = Proc([self.path("examples", "server"), "0"],
                       first="listening")
            return srv.pid, srv.first.rsplit(":", 1)[1], srv.close
        runs, held = self.load_series("server", start,
                                      self.path("examples", "fix.so"),
                                      "price 250 10", "total 25.00",
                                      "total 22.50")
        self.load_rows("load", "server", runs, held)

    def redis_start(self, rdir):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        srv = subprocess.Popen(
            [os.path.join(rdir, "redis-server"), "--port", str(port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no"],
            stdout=subprocess.DEVNULL, cwd=rdir)

        def close():
            srv.terminate()
            srv.wait(timeout=30)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                return srv, port, close
            except OSError:
                if time.monotonic() > deadline or srv.poll() is not None:
                    close()
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.05)

    def fig_redis(self):
        """Redis built from Debian's source package (scripts/redis.sh),
        PING in a closed loop, patched to answer +PATCHED."""
        rdir = self.path("redis")
        r = subprocess.run(["sh", os.path.join(ROOT, "scripts", "redis.sh"),
                            rdir])
        if r.returncode != 0:
            raise RuntimeError("building Redis from Debian's source failed")

        def start():
            srv, port, close = self.redis_start(rdir)
            return srv.pid, port, close
        runs, held = self.load_series("redis", start,
                                      self.path("bench", "redis_fix.so"),
                                      "PING", "+PONG", "+PATCHED")
        self.load_rows("redis", "redis", runs, held)

    # ------------------------------------------------------------------
    # 7: `relive patch --all` over many processes.

    def fleet_start(self, n, preload):
        """Starts n bench/fleet processes (under `relive run` when preload);
        returns (procs, answers file, their PIDs) once all are ready."""
        r, w = os.pipe()
        env = dict(os.environ, RELIVE_AGENT=self.path("librelive-agent.so"))
        procs = []
        try:
            for _ in range(n):
                argv = [self.path("bench", "fleet"), str(w)]
                if preload:
                    argv = [self.relive_bin, "run", "--"] + argv
                procs.append(subprocess.Popen(argv, stdin=subprocess.PIPE,
                                              pass_fds=(w,), env=env))
            os.close(w)
            w = -1
            f = os.fdopen(r)
            r = -1
            pids = []
            for _ in range(n):
                line = f.readline().split()
                if len(line) != 2 or line[0] != "ready":
                    raise RuntimeError("a fleet process did not start")
                pids.append(int(line[1]))
            return procs, f, pids
        except BaseException:
            for fd in (r, w):
                if fd >= 0:
                    os.close(fd)
            self.fleet_stop(procs)
            raise

    @staticmethod
    def fleet_stop(procs):
        for p in procs:
            p.stdin.close()
        for p in procs:
            p.wait()

    def fleet_run(self, n, preload):
        """Starts n bench/fleet processes, patches them all with one
        `relive patch --all`, checks that every one answers with the
        patched function; returns (wall s, relive's CPU s, the targets'
        CPU s: every thread of the n processes, across the command; None
        unless preloaded)."""
        procs, f, pids = self.fleet_start(n, preload)
        try:
            before = self.threads_cpu(pids) if preload else None
            rc, wall, out = self.relive("patch", "--all",
                                        self.path("bench", "fleet_fix.so"),
                                        timeout=600)
            cpu = self.last_cpu
            if rc != 0:
                raise RuntimeError("relive patch --all: exit %d:\n%s" %
                                   (rc, out[-2000:]))
            # preloaded only: an injection's boot thread ends unseen
            targets = self.threads_cpu_since(pids, before) if preload \
                else None
            for p in procs:
                p.stdin.write(b"x\n")
                p.stdin.flush()
            answers = [f.readline().split() for _ in range(n)]
            bad = [a for a in answers if a[1] != "101"]
            if bad:
                raise RuntimeError("%d of %d processes not patched: %s" %
                                   (len(bad), n, bad[:5]))
            return wall, cpu, targets
        finally:
            self.fleet_stop(procs)
            f.close()

    def fleet_floor(self, n):
        """The part of patching n preloaded processes that any live patcher
        pays: each process loads the patch (woken by a line, it makes the
        dlopen itself, all of them at once), and one thread of each is
        stopped and resumed from outside (bench/stopall, two at once, one
        per half of the processes).  Returns (dlopen s, stop s, the
        processes' CPU s for their dlopen)."""
        procs, f, pids = self.fleet_start(n, True)
        try:
            line = ("dlopen %s\n" % self.path("bench", "fleet_fix.so")).encode()
            before = self.threads_cpu(pids)
            t0 = time.monotonic()
            for p in procs:
                p.stdin.write(line)
                p.stdin.flush()
            answers = [f.readline().split() for _ in range(n)]
            t_dl = time.monotonic() - t0
            dl_cpu = self.threads_cpu_since(pids, before)
            bad = [a for a in answers if a[1:] != ["dlopen", "1"]]
            if bad:
                raise RuntimeError("%d of %d processes could not load the "
                                   "patch: %s" % (len(bad), n, bad[:5]))
            half = (n + 1) // 2
            t0 = time.monotonic()
            stops = [subprocess.Popen([self.path("bench", "stopall")] +
                                      [str(p) for p in part],
                                      stdout=subprocess.PIPE)
                     for part in (pids[:half], pids[half:]) if part]
            for s in stops:
                s.communicate(timeout=600)
            t_stop = time.monotonic() - t0
            if any(s.returncode for s in stops):
                raise RuntimeError("bench/stopall could not stop a process")
            return t_dl, t_stop, dl_cpu
        finally:
            self.fleet_stop(procs)
            f.close()

    def fig_fleet(self):
        """Three rounds, each of: relive patch --all of n preloaded
        processes, of n unprepared ones, and the floor beside them (fresh
        processes every time); medians over the rounds."""
        n = 100 if self.quick else 1000
        rounds = 3
        runs = {"agent preloaded": [], "unprepared": []}
        floors = []
        for _ in range(rounds):
            for preload, lbl in ((True, "agent preloaded"),
                                 (False, "unprepared")):
                runs[lbl].append(self.fleet_run(n, preload))
            floors.append(self.fleet_floor(n))
        res = {"n": n}
        for lbl, lim, preloaded in (("agent preloaded", 1.0, True),
                                    ("unprepared", 5.0, False)):
            walls = [w for w, _, _ in runs[lbl]]
            cpus = [c for _, c, _ in runs[lbl]]
            res[lbl] = {"wall_s": walls, "cpu_s": cpus}
            self.row("7", "relive patch --all, %d processes, %s" % (n, lbl),
                     median(walls), "s", ("<=", lim * n / 1000),
                     sp=spread(walls))
            self.row("7", "  wall time per process", 1e3 * median(walls) / n,
                     "ms")
            self.row("7", "  CPU time per process (relive, all children)",
                     1e3 * median(cpus) / n, "ms", sp=spread(
                         [1e3 * c / n for c in cpus]))
            if preloaded:
                tcpus = [t for _, _, t in runs[lbl]]
                res[lbl]["targets_cpu_s"] = tcpus
                self.row("7", "  CPU time per process (the target's "
                         "threads)", 1e3 * median(tcpus) / n, "ms",
                         sp=spread([1e3 * c / n for c in tcpus]))
        dl = [d for d, _, _ in floors]
        st = [t for _, t, _ in floors]
        dlc = [c for _, _, c in floors]
        both = [d + t for d, t, _ in floors]
        res["floor"] = {"dlopen_s": dl, "stop_s": st, "dlopen_cpu_s": dlc}
        self.row("7", "floor, no relive: each of %d loads the patch" % n,
                 median(dl), "s", sp=spread(dl))
        self.row("7", "  CPU time per process (its own dlopen)",
                 1e3 * median(dlc) / n, "ms", sp=spread(
                     [1e3 * c / n for c in dlc]))
        self.row("7", "floor, no relive: stop+resume a thread of each",
                 median(st), "s", sp=spread(st))
        self.row("7", "floor, no relive: both", median(both), "s",
                 sp=spread(both))
        ratio = [w / b for (w, _, _), b in
                 zip(runs["agent preloaded"], both)]
        self.row("7", "preloaded --all / floor, same round", median(ratio),
                 "ratio", sp=spread(ratio))
        res["cold_wake"] = self.cold_wake()
        res["machine_costs"] = self.machine_costs()
        res["preload_cost"] = self.preload_cost(100)
        self.raw["fleet"] = res

    @staticmethod
    def threads_cpu(pids):
        """{(pid, tid): (state, CPU ns)} of every thread of pids now."""
        out = {}
        for pid in pids:
            try:
                tids = os.listdir("/proc/%d/task" % pid)
            except OSError:
                continue
            for tid in tids:
                try:
                    out[(pid, tid)] = Bench.thread_cpu(pid, tid)
                except OSError:
                    pass
        return out

    @staticmethod
    def thread_cpu(pid, tid):
        """(state letter, CPU ns) of thread tid of pid."""
        d = "/proc/%d/task/%s/" % (pid, tid)
        with open(d + "stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        with open(d + "schedstat") as f:
            return state, int(f.read().split()[0])

    def threads_cpu_since(self, pids, before):
        """The CPU seconds every thread of pids used since before (a
        threads_cpu() result; a thread born since counts from 0, one that
        ended since is not counted), once none of them is running: a
        running thread's count is brought up to date only when it stops.
        Up to 10 s for them to settle."""
        deadline = time.monotonic() + 10
        while True:
            now = self.threads_cpu(pids)
            if all(st != "R" for st, _ in now.values()) or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.001)
        return sum(ns - before.get(k, (None, 0))[1]
                   for k, (_, ns) in now.items()) / 1e9

    @staticmethod
    def agent_thread(pid):
        """(state, CPU ns) of the agent's thread of pid, or None."""
        for tid in os.listdir("/proc/%d/task" % pid):
            d = "/proc/%d/task/%s/" % (pid, tid)
            try:
                with open(d + "comm") as f:
                    if f.read().strip() != "relive-agent":
                        continue
                return Bench.thread_cpu(pid, tid)
            except OSError:
                return None
        return None

    @staticmethod
    def memory(pid):
        """(PSS, private) kB of pid (smaps_rollup)."""
        v = {}
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                k, _, rest = line.partition(":")
                if k in ("Pss", "Private_Clean", "Private_Dirty"):
                    v[k] = int(rest.split()[0])
        return v["Pss"], v["Private_Clean"] + v["Private_Dirty"]

    def preload_cost(self, n):
        """What `relive run` costs a process that is never patched: n
        bench/fleet processes started under it, once every agent thread
        has finished starting (asleep, its CPU time unchanged between two
        looks), against n started plainly: the agent thread's CPU time,
        and each process's proportional and private memory (medians)."""
        out = {}
        for preload in (True, False):
            procs, f, pids = self.fleet_start(n, preload)
            try:
                cpu = {}
                if preload:
                    deadline = time.monotonic() + 120
                    prev = None
                    while True:
                        cur = {p: self.agent_thread(p) for p in pids}
                        if any(v is None for v in cur.values()):
                            raise RuntimeError("a preloaded fleet process "
                                               "has no agent thread")
                        if cur == prev and all(v[0] == "S"
                                               for v in cur.values()):
                            break
                        if time.monotonic() > deadline:
                            raise RuntimeError("the agent threads did not "
                                               "settle in 120 s")
                        prev = cur
                        time.sleep(0.2)
                    cpu = {p: v[1] for p, v in cur.items()}
                mem = [self.memory(p) for p in pids]
            finally:
                self.fleet_stop(procs)
                f.close()
            key = "preloaded" if preload else "plain"
            out[key] = {"pss_kb": [m[0] for m in mem],
                        "private_kb": [m[1] for m in mem]}
            if preload:
                out[key]["agent_cpu_ms"] = [c / 1e6 for c in cpu.values()]
        a = out["preloaded"]["agent_cpu_ms"]
        self.row("7", "relive run, never patched: agent thread's CPU at start",
                 median(a), "ms", sp=spread(a))
        for k, what in (("pss_kb", "proportional (PSS)"),
                        ("private_kb", "private")):
            pre, plain = out["preloaded"][k], out["plain"][k]
            self.row("7", "relive run, never patched: %s memory" % what,
                     median(pre), "kB", sp=spread(pre))
            self.row("7", "  same process started plainly", median(plain),
                     "kB", sp=spread(plain))
        return out

    def cold_wake(self):
        """What the machine charges, with no relive, for waking a process
        that sat idle (as every process of figure 7 did) against one that
        ran moments before: bench/coldwake, 100 processes woken one at a
        time, each touching nothing or 1024 of its pages (4 MiB), median
        wake after 3 s idle and just after running."""
        out = {}
        for pages, what in ((0, "wake"), (1024, "wake + touch 4 MiB")):
            r = subprocess.run([self.path("bench", "coldwake"), "100",
                                str(pages), "3000"],
                               stdout=subprocess.PIPE, timeout=120)
            v = r.stdout.decode().split()
            if r.returncode != 0 or len(v) != 4:
                raise RuntimeError("bench/coldwake failed: exit %d" %
                                   r.returncode)
            hot, cold = float(v[1]), float(v[3])
            out[str(pages)] = {"hot_us": hot, "cold_us": cold}
            self.row("7", "machine, no relive: %s, idle 3 s" % what, cold,
                     "us")
            self.row("7", "machine, no relive: %s, just ran" % what, hot,
                     "us")
        return out

    def machine_costs(self):
        """What the kernel charges here for its basic services, with no
        relive (bench/machcost): a system call, a page fault (mmap, write
        and munmap of one page, less the same untouched), the first
        dlopen of an empty library in a process just started.  Every
        process of figure 7 pays tens of the faults and one dlopen at
        least (the patch's)."""
        r = subprocess.run([self.path("bench", "machcost"),
                            self.path("bench", "empty.so")],
                           stdout=subprocess.PIPE, timeout=120)
        v = r.stdout.decode().split()
        if r.returncode != 0 or len(v) != 8:
            raise RuntimeError("bench/machcost failed: exit %d" %
                               r.returncode)
        out = {v[i]: float(v[i + 1]) for i in range(0, 8, 2)}
        self.row("7", "machine, no relive: a system call (getppid)",
                 out["syscall_us"], "us")
        self.row("7", "machine, no relive: a page fault (first write)",
                 out["fault_us"], "us")
        self.row("7", "machine, no relive: first dlopen of an empty library",
                 out["dlopen_us"], "us")
        return out

    def machine(self):
        model = ""
        with open("/proc/cpuinfo") as f:
            for l in f:
                if l.startswith("model name"):
                    model = l.split(":", 1)[1].strip()
                    break
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
        return {"nproc": os.cpu_count(), "cpu": model, "loadavg": load,
                "kernel": platform.release(),
                "relive": subprocess.run([self.relive_bin, "--version"],
                                         stdout=subprocess.PIPE).stdout.decode().strip()}

    @staticmethod
    def busy(seconds=1.0):
        """The fraction of CPU time not idle over the next seconds."""
        def sample():
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
            return sum(v), v[3] + v[4]
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
        return 1.0 - (i1 - i0) / max(t1 - t0, 1)

    def markdown(self):
        out = ["| # | figure | value | unit | spread [min..max] | target | ok |",
               "|---|---|---:|---|---|---|---|"]
        for r in self.rows:
            ok = "" if r["ok"] is None else ("yes" if r["ok"] else "**no**")
            out.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                r["figure"], r["name"].strip(), self.fmt_value(r), r["unit"],
                self.spread_str(r["spread"]), r["target"], ok))
        return "\n".join(out) + "\n"

    def plot(self, png):
        sc = self.raw.get("scale")
        if not sc or not shutil.which("gnuplot"):
            return False
        dat = self.path("bench-plot.dat")
        with open(dat, "w") as f:
            for key in ("threads", "funcs"):
                f.write("# %s wall_ms wall_min wall_max pause_ms pause_min pause_max\n" % key)
                for p in sc[key]:
                    w, q = p["wall_ms"], p["pause_ms"]
                    f.write("%d %g %g %g %g %g %g\n" % (
                        p["n"], median(w), min(w), max(w),
                        median(q), min(q), max(q)))
                f.write("\n\n")
        m = self.machine()
        gp = """
set terminal pngcairo size 1100,480 font ",10"
set output '%s'
set multiplot layout 1,2 title "relive: patch wall time and longest thread pause (%d CPUs, %s)"
set logscale xy
set grid
set key top left
set ylabel "milliseconds"
set yrange [0.3:*]
set xlabel "threads in the target (100-function patch)"
set xrange [0.7:1500]
plot '%s' index 0 using 1:2:3:4 with yerrorlines lw 2 title "relive patch wall time", \\
     '' index 0 using 1:5:6:7 with yerrorlines lw 2 title "longest pause of a thread"
set xlabel "functions in the patch (64 threads)"
set xrange [0.7:15000]
plot '%s' index 1 using 1:2:3:4 with yerrorlines lw 2 title "relive patch wall time", \\
     '' index 1 using 1:5:6:7 with yerrorlines lw 2 title "longest pause of a thread"
unset multiplot
""" % (png, m["nproc"], m["cpu"], dat, dat)
        gpf = self.path("bench-plot.gp")
        with open(gpf, "w") as f:
            f.write(gp)
        return subprocess.run(["gnuplot", gpf]).returncode == 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--docs", action="store_true")
    ap.add_argument("--only", default="calls,pause,effect,scale,load,redis,fleet")
    a = ap.parse_args()
    b = Bench(a.build, a.quick)
    for f in ("relive", "bench/calls", "bench/many", "bench/loadgen",
              "examples/server", "bench/many10000.so", "bench/fleet",
              "bench/fleet_fix.so", "bench/stopall", "bench/coldwake",
              "bench/machcost", "bench/empty.so"):
        if not os.path.exists(b.path(f)):
            sys.exit("bench: %s is missing: is subdir('bench') in meson.build "
                     "and the build up to date?" % b.path(f))
    t0 = time.monotonic()
    m = b.machine()
    print("relive benchmarks: %s, %d CPUs (%s), Linux %s, load average %s" %
          (m["relive"], m["nproc"], m["cpu"], m["kernel"], m["loadavg"]),
          flush=True)
    print("  %-3s %-52s %10s %-6s %-24s %-10s %s" %
          ("#", "figure", "value", "unit", "spread [min..max]", "target", "ok"))
    failed = []
    m["busy_before"] = b.busy()
    if m["busy_before"] > 0.1:
        b.warnings.append("the machine was busy before the run (%.0f%% of its "
                          "%d CPUs in use): other processes' load is in the "
                          "figures" % (100 * m["busy_before"], m["nproc"]))
        print("  WARNING: " + b.warnings[-1], flush=True)
    for name in a.only.split(","):
        try:
            getattr(b, "fig_" + name)()
        except Exception as e:  # report and go on with the next figure
            failed.append("%s: %s" % (name, e))
            print("  %s FAILED: %s" % (name, e), flush=True)
    elapsed = time.monotonic() - t0
    m["loadavg_end"] = b.machine()["loadavg"]
    m["busy_after"] = b.busy()
    if m["busy_after"] > 0.1:
        b.warnings.append("the machine was busy right after the run (%.0f%% "
                          "of its CPUs in use): other processes may have run "
                          "during it" % (100 * m["busy_after"]))
    print()
    print("figure | value | unit | target | ok")
    for r in b.rows:
        ok = "" if r["ok"] is None else ("yes" if r["ok"] else "NO")
        if r["target"] or r["figure"] == "7":
            print("%s %s | %s | %s | %s | %s" % (r["figure"], r["name"].strip(),
                                                 b.fmt_value(r), r["unit"],
                                                 r["target"], ok))
    for w in b.warnings:
        print("WARNING: " + w)
    for p in b.problems + failed:
        print("PROBLEM: " + p)
    md = b.markdown()
    res = {"machine": m, "command": "scripts/bench.sh " + " ".join(sys.argv[1:]),
           "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
           "elapsed_s": elapsed, "figures": b.rows, "raw": b.raw,
           "problems": b.problems + failed, "warnings": b.warnings}
    with open(b.path("bench.json"), "w") as f:
        json.dump(res, f, indent=1)
    with open(b.path("bench.md"), "w") as f:
        f.write(md)
    png = b.path("bench.png")
    plotted = b.plot(png)
    print("\nwrote %s, %s%s (%.0f s)" % (b.path("bench.json"), b.path("bench.md"),
                                         ", " + png if plotted else "", elapsed))
    if a.docs:
        doc = os.path.join(ROOT, "docs", "performance.md")
        text = open(doc).read()
        head = "<!-- bench:table -->\n"
        tail = "<!-- /bench:table -->\n"
        i, j = text.index(head) + len(head), text.index(tail)
        info = ("Measured %s by `%s` on %d CPUs (%s), Linux %s, %s, in "
                "%.0f s; CPUs %.0f%% busy just before, %.0f%% just after.\n\n" %
                (res["date"], res["command"], m["nproc"], m["cpu"], m["kernel"],
                 m["relive"], elapsed, 100 * m["busy_before"],
                 100 * m["busy_after"]))
        for w in b.warnings:
            info += "**Warning:** %s.\n\n" % w
        with open(doc, "w") as f:
            f.write(text[:i] + info + md + text[j:])
        if plotted:
            shutil.copy(png, os.path.join(ROOT, "docs", "performance.png"))
        print("updated docs/performance.md and docs/performance.png")
    return 1 if failed or b.problems else 0


if __name__ == "__main__":
    sys.exit(main())
