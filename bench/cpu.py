#!/usr/bin/env python3
"""CPU time of processes in nanoseconds, for the benchmarks.

  cpu.py ns PID...            the CPU ns each PID has used so far: the first field of
                              /proc/PID/task/*/schedstat (time on CPU, ns), summed over every
                              thread alive now. Sample right before and right after what is
                              measured: a thread that exits in between takes its time with it
                              (the per-process totals in /proc/PID/stat are 10 ms ticks, which
                              read 0 for `tail -F` over a thousand lines). Prints a line a PID:
                              the ns, then the thread ids counted (comma-separated), so that a
                              caller can tell whether a thread exited between two samples.
  cpu.py run OUT -- CMD...    runs CMD and writes its CPU ns to OUT: the rusage of the waited
                              child (utime + stime, which Linux scales to the scheduler's exact
                              runtime), exited threads included. Exits with CMD's status.
  cpu.py pos PID PATH         the file position of PID's descriptor open on PATH (the highest,
                              if several): how far a follower that read()s has read.
"""
import os
import subprocess
import sys


def task_ns(pid):
    total = 0
    tids = []
    base = f"/proc/{pid}/task"
    for tid in os.listdir(base):
        try:
            with open(f"{base}/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
            tids.append(tid)
        except (FileNotFoundError, ProcessLookupError):
            pass  # exited between the listing and the read
    return total, sorted(tids, key=int)


def position(pid, path):
    want = os.path.realpath(path)
    best = None
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            if os.readlink(f"{fd_dir}/{fd}") != want:
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                for line in f:
                    if line.startswith("pos:"):
                        pos = int(line.split()[1])
                        best = pos if best is None else max(best, pos)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return best


def main(argv):
    if len(argv) >= 2 and argv[0] == "ns":
        for pid in argv[1:]:
            total, tids = task_ns(pid)
            print(total, ",".join(tids))
        return 0
    if len(argv) >= 4 and argv[0] == "run" and argv[2] == "--":
        child = subprocess.Popen(argv[3:])
        _, status, usage = os.wait4(child.pid, 0)
        with open(argv[1], "w") as out:
            out.write("%d\n" % round((usage.ru_utime + usage.ru_stime) * 1e9))
        return os.waitstatus_to_exitcode(status)
    if len(argv) == 3 and argv[0] == "pos":
        pos = position(argv[1], argv[2])
        print(-1 if pos is None else pos)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
