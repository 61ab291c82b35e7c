"""At which height does the person model find people best? Recall by person height in model-input pixels.

Each row is one generated clip (`detector.sample`) exactly the model's input size, analyzed untiled, so a person's
height in the clip is their height in the model's input. `--squash` widens the clip by that factor, so the model sees
people narrowed as in a squashed tile. `detector/tiling.py` sizes `auto` tiles from these figures.

    python -m devtools.person_scale [--heights 16,24,...] [--seeds 3] [--squash 1.0]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from detector.analyzer import AnalyzeOptions, VideoAnalyzer
from detector.sample import SampleSpec, write_sample
from devtools.scoring import score

HEIGHTS = (16, 24, 32, 40, 48, 64, 80, 100, 120, 150, 180, 210)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heights", default=",".join(map(str, HEIGHTS)), help="person heights in input pixels")
    parser.add_argument("--seeds", type=int, default=3, help="clips per height (layouts and motion differ)")
    parser.add_argument("--squash", type=float, default=1.0, help="clip width / height (1.33: a 4:3 tile)")
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    analyzer = VideoAnalyzer(AnalyzeOptions(detectors=("human",), tiles="off"))
    assert analyzer.human is not None
    in_w, in_h = analyzer.human.input_size
    width = 2 * round(in_w * args.squash / 2)
    print(f"model input {in_w}x{in_h}; clips {width}x{in_h}, people as tall as the heights below")
    print(f"{'height px':>9}  {'of input':>8}  {'recall':>6}  {'precision':>9}  {'truths':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for height in (int(h) for h in args.heights.split(",")):
            truths = found = matched = 0
            for seed in range(args.seeds):
                video = Path(tmp) / f"h{height}-{seed}.mp4"
                fraction = height / in_h
                # one person per clip when tall, several side by side when short: more samples, same size
                people = max(1, min(6, int(0.3 / fraction))) if fraction < 0.3 else 1
                spec = SampleSpec(width, in_h, args.seconds, 25, people, (fraction, fraction), seed)
                truth = write_sample(video, spec)
                out = Path(tmp) / f"h{height}-{seed}.json"
                analyzer.run([video], out)
                result = score(out, truth, "person")
                truths, found, matched = truths + result.truths, found + result.found, matched + result.matched
            recall = matched / truths if truths else float("nan")
            precision = matched / found if found else float("nan")
            print(f"{height:9d}  {height / in_h:8.2f}  {recall:6.2f}  {precision:9.2f}  {truths:6d}")


if __name__ == "__main__":
    main()
