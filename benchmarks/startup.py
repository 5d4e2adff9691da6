"""A gateway's start-up without the MPC stack (layering issue): the control plane
imports no torch or CrypTen, only its worker processes do.

Measured in fresh interpreters, `--runs` times each, median: the time and peak
memory (max RSS) of importing the control plane (gateway.server, the CLI, the
SDK) against the baseline, in the same run, of importing it together with the
MPC stack it used to load (mpc.programs: torch and CrypTen); then a real gateway
process (`mpcgate serve`, no warm workers) from spawn to serving, and its peak
memory once serving.

Usage: .venv/bin/python benchmarks/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gateway.federation import LocalFederation

CONTROL_PLANE = "import gateway.server, gateway.cli, gateway.client.sdk"
WITH_MPC = CONTROL_PLANE + "; import mpc.programs"


def imported(statement: str) -> tuple[float, float]:
    """(seconds, MB of peak RSS) of a fresh interpreter running `statement`."""
    script = (f"import resource, time\nt = time.perf_counter()\n{statement}\n"
              "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def served(runs: int) -> tuple[float, float]:
    """(seconds from spawn to serving, MB of peak RSS) of a gateway process."""
    times, peaks = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as scratch, \
                LocalFederation(Path(scratch), ["bank-a"], party_config={"bank-a": "warm_workers = 0"}) as fed:
            started = time.perf_counter()
            fed.start()
            times.append(time.perf_counter() - started)
            status = Path(f"/proc/{fed.pid('bank-a')}/status").read_text()
            peaks.append(int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024)
    return statistics.median(times), statistics.median(peaks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rows = {}
    for name, statement in (("control plane", CONTROL_PLANE), ("with torch + CrypTen (before)", WITH_MPC)):
        samples = [imported(statement) for _ in range(args.runs)]
        rows[name] = (statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples))
        print(f"import {name:32} {rows[name][0]:6.2f} s  {rows[name][1]:6.0f} MB")
    (t, m), (t0, m0) = rows["control plane"], rows["with torch + CrypTen (before)"]
    print(f"ratio (control plane / before): time {t / t0:.2f}x, memory {m / m0:.2f}x")
    seconds, peak = served(args.runs)
    print(f"a gateway process, spawn to serving: {seconds:.2f} s, peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
