#!/usr/bin/env python3
"""bench/pause_trace.py - where the pause benchmark's sleepers lose their
time: a diagnostic, not a benchmark (make bench does not run it).

    pause_trace.py BUILD_DIR [RUNS]

Each run starts the pause benchmark's target (bench/many with 64 threads
that sleep 1 ms in a loop, the agent preloaded), records the kernel's
scheduler events with the kernel's own tracer (tracefs, so root) while
`relive patch` applies the 100-function patch, and splits each sleeper's
largest lateness in the interval into:

  timer late  from the end of its 1 ms to its wake-up: the CPU did not
              take its timer interrupt (interrupts off, or the virtual
              CPU not running at all);
  run delay   from its wake-up to its running: it waited for a CPU.

For the run delays it tells who held the CPU the sleeper waited for:
relive, the agent's thread, the other sleepers, nobody (idle), or
another program (by name);
and, when relive or the agent held it, in which system call they were
when the sleeper woke ("user" for user space or a page fault).  The
events go to the kernel's ring buffer and are read once the run is over,
so that no reader competes with the sleepers meanwhile; the tracer's
settings (its buffer's size, whether it is on) are put back afterwards.
"""
import collections
import os
import re
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (bench.py beside this file)

TRACING = "/sys/kernel/tracing/"
LINE = re.compile(r"^\s*(.+?)-(\d+)\s+\[(\d+)\].{5,6}\s+([\d.]+): (\w+): (.*)$")
OURS = ("relive", "relive-agent")


def tw(name, value):
    with open(TRACING + name, "w") as f:
        f.write(value)


def record(b, so):
    """One patch of a fresh target under the tracer; returns the trace's
    lines and the target's own figure (median and max of the sleepers'
    largest gaps, in ms)."""
    with open(TRACING + "buffer_size_kb") as f:
        size_kb = f.read().split()[0]  # "7 (expanded: 1408)" at boot
    with open(TRACING + "tracing_on") as f:
        was_on = f.read().strip()
    t = b.many(0, 64, 0, preload=True)
    try:
        tw("tracing_on", "0")
        tw("trace", "")
        tw("buffer_size_kb", "65536")
        for ev in ("sched/sched_switch", "sched/sched_wakeup"):
            tw("events/%s/enable" % ev, "1")
        only_ours = " || ".join('comm == "%s"' % c for c in OURS)
        tw("events/raw_syscalls/filter", only_ours)
        tw("events/raw_syscalls/enable", "1")
        tw("tracing_on", "1")
        t.cmd("reset")
        tw("trace_marker", "PAUSE_TRACE_START")
        b.must(0, "patch", "-p", t.pid, so)
        time.sleep(0.005)
        gaps, _ = b.parse_gaps(t.cmd("read"))
        tw("tracing_on", "0")
        with open(TRACING + "trace") as f:
            lines = f.read().splitlines()
    finally:
        tw("tracing_on", "0")
        tw("events/enable", "0")
        tw("events/raw_syscalls/filter", "0")
        tw("trace", "")
        tw("buffer_size_kb", size_kb)
        tw("tracing_on", was_on)
        t.close()
    return lines, t.pid, statistics.median(gaps), max(gaps)


def analyse(lines, pid):
    """Per sleeper: its largest lateness split as above, and who held the
    CPU during its run delay.  Returns (per-thread list, holders)."""
    events, t0 = [], None
    for line in lines:
        m = LINE.match(line)
        if not m:
            continue
        ts = float(m.group(4))
        if t0 is None and "PAUSE_TRACE_START" in line:
            t0 = ts
        events.append((ts, m.group(1), int(m.group(2)), int(m.group(3)),
                       m.group(5), m.group(6)))
    if t0 is None:
        raise RuntimeError("the trace lost its start mark: a larger "
                           "buffer_size_kb is needed")
    cur, segs, slept, woken, insys = {}, [], {}, {}, {}
    late = []  # (total, timer late, run delay, tid, woke at, ran at, cpu)
    for ts, comm, p, cpu, ev, rest in events:
        if ev == "sys_enter":
            insys[p] = rest.split("(")[0].strip()
        elif ev == "sys_exit":
            insys.pop(p, None)
        elif ev == "sched_wakeup":
            m = re.search(r" pid=(\d+) .*target_cpu=(\d+)", rest)
            w = int(m.group(1))
            holder = cur.get(int(m.group(2)))
            what = None
            if holder and holder[0] in OURS:
                what = insys.get(holder[1], "user")
            woken[w] = (ts, what)
        elif ev == "sched_switch":
            m = re.search(r"prev_comm=(.*) prev_pid=(\d+) prev_prio=\d+ "
                          r"prev_state=(\S+) .*next_comm=(.*) "
                          r"next_pid=(\d+)", rest)
            prev, state = int(m.group(2)), m.group(3)
            ncomm, nxt = m.group(4), int(m.group(5))
            if cpu in cur:
                segs.append((cpu, cur[cpu][0], cur[cpu][2], ts))
            cur[cpu] = (ncomm, nxt, ts)
            if m.group(1) == "many" and state == "S":
                slept[prev] = ts
            if ncomm == "many" and nxt in woken and nxt in slept:
                s = slept.pop(nxt)
                w, what = woken.pop(nxt)
                if s >= t0 and nxt != pid:
                    late.append(((ts - s) * 1e3 - 1, (w - s) * 1e3 - 1,
                                 (ts - w) * 1e3, nxt, w, ts, cpu, what))
    worst = {}
    for x in late:
        if x[3] not in worst or x[0] > worst[x[3]][0]:
            worst[x[3]] = x
    holders, calls = collections.Counter(), collections.Counter()
    for _, _, _, _, w, ts, cpu, what in worst.values():
        for scpu, comm, s, e in segs:
            o = min(e, ts) - max(s, w)
            if scpu != cpu or o <= 0:
                continue
            key = ("relive" if comm == "relive" else
                   "agent" if comm == "relive-agent" else
                   "idle" if comm.startswith("swapper") else
                   "sleepers" if comm == "many" else comm)
            holders[key] += o
        if what:
            calls[what] += 1
    return list(worst.values()), holders, calls


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    if not os.access(TRACING + "trace", os.W_OK):
        sys.exit("pause_trace: %s is not writable: run as root, with "
                 "tracefs mounted" % TRACING)
    b = bench.Bench(sys.argv[1], False)
    so = b.path("bench", "many100.so")
    for run in range(int(sys.argv[2]) if len(sys.argv) == 3 else 3):
        lines, pid, med, mx = record(b, so)
        worst, holders, calls = analyse(lines, pid)
        total = sum(holders.values()) or 1
        print("run %d: the target's figure: median thread max %.2f ms, "
              "max %.2f ms" % (run + 1, med, mx))
        print("  per sleeper, its largest lateness (median over %d): "
              "%.2f ms = timer late %.2f + run delay %.2f" %
              (len(worst), statistics.median(x[0] for x in worst),
               statistics.median(x[1] for x in worst),
               statistics.median(x[2] for x in worst)))
        print("  who held the CPU in those run delays: " +
              ", ".join("%s %.0f%%" % (k, 100 * v / total)
                        for k, v in holders.most_common()))
        if calls:
            print("  where relive or the agent was when such a sleeper "
                  "woke: " + ", ".join("%s %d" % kv
                                       for kv in calls.most_common(6)))


if __name__ == "__main__":
    main()
