"""`python -m devtools.sim`: the fault-injecting simulation of the whole pipeline (`make simulate`).

Runs seeded schedules against moto (one server per worker process), prints each violated invariant with its seed and
the command that replays it, and ends with one JSON line: schedules, videos, chunks, faults drawn by kind, violations,
invariants checked. Exit 1 on any violation.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from devtools.sim.invariants import INVARIANTS
from devtools.sim.plants import PLANTS
from devtools.sim.runner import simulate, trace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.sim", description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=500, help="how many seeds, from --first")
    parser.add_argument("--first", type=int, default=1)
    parser.add_argument("--seed", type=int, help="replay this one seed")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--plant", choices=sorted(PLANTS), help="run with this safeguard patched out")
    parser.add_argument("--until", choices=list(INVARIANTS), help="stop at the first schedule that violates it")
    parser.add_argument("--trace", action="store_true", help="with --seed: print what happened, step by step")
    args = parser.parse_args(argv)
    if args.trace and args.seed is not None:
        return trace(args.seed, args.plant)
    seeds = [args.seed] if args.seed is not None else list(range(args.first, args.first + args.schedules))
    started = time.monotonic()
    summary = simulate(seeds, min(args.workers, len(seeds)), args.plant, args.until)
    summary["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(summary))
    return 1 if summary["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
