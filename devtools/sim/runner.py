"""The simulation's runner: worker processes, each with its own moto server, run seeds and report what they found."""

from __future__ import annotations

import contextlib
import io
import logging
import multiprocessing
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from devtools.sim.faults import KINDS
from devtools.sim.invariants import INVARIANTS
from devtools.sim.plants import PLANTS

_state: dict[str, Any] = {}


def _start_worker(plant: str | None) -> None:
    """One moto server and one clip per worker process; the plant, if any, stays in for the worker's life."""
    from devtools.moto_server import serve
    from devtools.sample_clip import make_clip

    logging.disable(logging.CRITICAL)
    server, _ = serve("simulation")
    work = Path(tempfile.mkdtemp(prefix="derby-sim-"))
    clip = work / "clip.mp4"
    make_clip(clip, seconds=2.0, fps=10, gop=10)
    _state.update(server=server, work=work, clip=clip)
    if plant:
        stack = contextlib.ExitStack()
        stack.enter_context(PLANTS[plant][1]())
        _state["plant"] = stack


def run_one(seed: int) -> dict[str, Any]:
    from devtools.sim.schedule import run_schedule

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            outcome = run_schedule(seed, _state["clip"], _state["work"] / f"seed{seed}")
        except Exception as exc:  # the simulation itself broke: report it as this seed's failure
            return {"seed": seed, "videos": 0, "chunks": 0, "faults": {}, "violations": [["simulation", repr(exc)]]}
    return {
        "seed": outcome.seed,
        "videos": outcome.videos,
        "chunks": outcome.chunks,
        "faults": outcome.faults,
        "violations": outcome.violations,
    }


def simulate(
    seeds: list[int], workers: int, plant: str | None, until: str | None = None, out: Any = sys.stdout
) -> dict[str, Any]:
    """Run the seeds; with `until`, stop at the first schedule that violates that invariant."""
    faults: Counter[str] = Counter({kind: 0 for kind in KINDS})
    videos = chunks = violations = schedules = 0
    caught: Counter[str] = Counter()
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_start_worker, initargs=(plant,)) as pool:
        for result in pool.imap_unordered(run_one, seeds):
            schedules += 1
            videos += result["videos"]
            chunks += result["chunks"]
            faults.update(result["faults"])
            for invariant, line in result["violations"]:
                violations += 1
                caught[invariant] += 1
                replay = f"python -m devtools.sim --seed {result['seed']}" + (f" --plant {plant}" if plant else "")
                print(f"seed {result['seed']}: {invariant}: {line}  (replay: {replay})", file=out, flush=True)
            if until is not None and caught[until]:
                break
    return {
        "schedules": schedules,
        "videos": videos,
        "chunks": chunks,
        "faults": dict(faults),
        "violations": violations,
        "invariants": list(INVARIANTS),
        "caught": dict(caught),
    }


def trace(seed: int, plant: str | None) -> int:
    """Replay one seed in this process and print its trace and violations."""
    from devtools.sim.schedule import run_schedule

    _start_worker(plant)
    with contextlib.redirect_stdout(io.StringIO()):
        outcome = run_schedule(seed, _state["clip"], _state["work"] / f"seed{seed}")
    print("\n".join(outcome.trace))
    for invariant, line in outcome.violations:
        print(f"VIOLATED {invariant}: {line}")
    return 1 if outcome.violations else 0
