"""Crowded wide shots: recall, precision, boxes holding two people, CPU per frame; `--tiles auto` against fixed grids.

The clips are generated (`SampleSpec.crowded`: groups of people side by side, small gaps, so neighbours stand on
both sides of tile borders) at three frame sizes and person heights, plus a 1080p crowd standing shoulder to shoulder
(suffix `t`), several seeds each. Grids compared:
`auto` (sized by the people, detector.scenes), `frame` (the grid the frame size alone gives, what `auto` was
before) and `fine` (tiles of the model's input size in frame pixels: no person is shrunk).
`CPU ms` is this process's CPU time per analyzed frame (decoding and probes included); `inputs` counts the person
model's inputs per frame with the probes, `grid` without them. A probe runs once per scene (10 s of video), here once
per clip of a few analyzed frames, so `inputs` and `CPU ms` overstate what `auto` costs on real video.
Exits non-zero when `auto` misses recall >= 0.9, precision >= 0.9 or merged boxes <= 0.5%.

    python -m devtools.eval_crowds [--seeds 2] [--every 5] [--tiles auto,frame,fine]   (make eval-crowds)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from detector.analyzer import AnalysisSummary, AnalyzeOptions, VideoAnalyzer
from detector.sample import SampleSpec, write_sample
from detector.tiling import plan_tiles, tiles_of_size
from devtools.scoring import Score, score

# frame size, people, person height (share of the frame height), gaps between neighbours (share of a width)
SHOTS = (
    ((1280, 720), 30, (0.10, 0.20), (0.03, 0.15)),
    ((1920, 1080), 48, (0.06, 0.12), (0.03, 0.15)),
    ((1920, 1080), 48, (0.06, 0.12), (0.0, 0.02)),  # shoulder to shoulder: where the model boxes groups
    ((3072, 1728), 60, (0.04, 0.08), (0.03, 0.15)),
)
GOALS = {"recall": 0.9, "precision": 0.9, "merged": 0.005}


@dataclass
class Totals:
    truths: int = 0
    found: int = 0
    matched: int = 0
    merged: int = 0
    frames: int = 0
    cpu_s: float = 0.0
    inputs: float = 0.0  # person-model inputs, probes included
    probes: int = 0  # of which the probes

    def add(self, s: Score, summary: AnalysisSummary, cpu_s: float) -> None:
        self.truths, self.found, self.matched, self.merged = (
            self.truths + s.truths,
            self.found + s.found,
            self.matched + s.matched,
            self.merged + s.merged,
        )
        self.frames += summary.frames_analyzed
        self.cpu_s += cpu_s
        self.inputs += summary.model_inputs_per_frame * summary.frames_analyzed
        self.probes += sum(scene.probe_inputs for scene in summary.scenes)

    def row(self, name: str, grids: str) -> str:
        s = Score(self.truths, self.found, self.matched, self.merged)
        return (
            f"{name:<24} {grids:<14} {s.recall:6.3f} {s.precision:9.3f} {100 * s.merged_share:7.2f}% "
            f"{1000 * self.cpu_s / max(self.frames, 1):8.1f} {self.inputs / max(self.frames, 1):7.1f} "
            f"{(self.inputs - self.probes) / max(self.frames, 1):6.1f}"
        )


def _spec(tiles: str, width: int, height: int, input_size: tuple[int, int]) -> str:
    if tiles == "frame":
        return plan_tiles(width, height, input_size, "auto", 0.2).label
    if tiles == "fine":
        return tiles_of_size(width, height, (float(input_size[0]), float(input_size[1])), 0.2).label
    return tiles


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2, help="clips per frame size")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--every", type=int, default=5, help="analyze every Nth frame")
    parser.add_argument("--tiles", default="auto,frame,fine", help="auto, frame, fine or COLSxROWS, comma-separated")
    args = parser.parse_args()
    kinds = args.tiles.split(",")
    header = (
        f"{'clip':<24} {'grid':<14} {'recall':>6} {'precision':>9} {'merged':>8} {'CPU ms':>8} {'inputs':>7} "
        f"{'grid':>6}"
    )
    totals = {kind: Totals() for kind in kinds}
    human = VideoAnalyzer(AnalyzeOptions(detectors=("human",))).human
    assert human is not None
    with tempfile.TemporaryDirectory() as tmp:
        print(header)
        for (width, height), people, person_height, gaps in SHOTS:
            for seed in range(args.seeds):
                tight = "t" if gaps[1] < 0.03 else ""
                video = Path(tmp) / f"crowd-{width}{tight}-{seed}.mp4"
                spec = SampleSpec.crowded((width, height), people, person_height, args.seconds, seed, gaps)
                truth = write_sample(video, spec)
                for kind in kinds:
                    tiles = _spec(kind, width, height, human.input_size)
                    analyzer = VideoAnalyzer(AnalyzeOptions(detectors=("human",), every=args.every, tiles=tiles))
                    out = Path(tmp) / f"{video.stem}-{kind}.json"
                    cpu = time.process_time()
                    summary = analyzer.run([video], out)
                    cpu = time.process_time() - cpu
                    result = score(out, truth, "person")
                    one = Totals()
                    one.add(result, summary, cpu)
                    totals[kind].add(result, summary, cpu)
                    name = f"{width}x{height}{tight} s{seed} {kind}"
                    print(one.row(name, summary.tiles), flush=True)
    print()
    print(header)
    for kind, total in totals.items():
        print(total.row(f"all {kind}", ""))
    if "auto" not in totals:
        return 0
    auto = totals["auto"]
    s = Score(auto.truths, auto.found, auto.matched, auto.merged)
    ok = s.recall >= GOALS["recall"] and s.precision >= GOALS["precision"] and s.merged_share <= GOALS["merged"]
    print(
        f"auto: recall {s.recall:.3f} (>= 0.9), precision {s.precision:.3f} (>= 0.9), merged boxes "
        f"{100 * s.merged_share:.2f}% (<= 0.5%): {'met' if ok else 'NOT MET'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
