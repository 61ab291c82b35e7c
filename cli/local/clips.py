"""The detector's sample clip with a keyframe every `keyframe_seconds`, so the split cuts it into several chunks.

The split cuts by stream copy at keyframes; the sample generator leaves x264's default of one keyframe per 250
frames, which makes a short sample a single chunk. Re-encoding keeps every frame, so the ground truth still holds.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

from detector.sample import SampleSpec, write_sample

# The demo's and the bench's sample: people 25-38% of a 960x540 frame (2x2 tiles), a few seconds at 25 fps.
DEMO_SAMPLE = SampleSpec(960, 540)


def sample_with_keyframes(out: Path, spec: SampleSpec, keyframe_seconds: float = 1.0) -> Path:
    """Write `out` and `<stem>.gt.json` (the sample's ground truth); returns the ground truth's path."""
    raw = out.with_name(out.stem + ".raw" + out.suffix)
    raw_truth = write_sample(raw, spec)
    with_keyframes(raw, out, spec.fps, keyframe_seconds)
    return raw_truth.replace(out.with_name(out.stem + ".gt.json"))


def with_keyframes(raw: Path, out: Path, fps: float, keyframe_seconds: float) -> None:
    """Re-encode the generated clip `raw` into `out` with a keyframe every `keyframe_seconds`; `raw` is removed."""
    gop = str(max(1, round(fps * keyframe_seconds)))
    rate = Fraction(fps).limit_denominator(1000)
    with av.open(str(raw)) as source, av.open(str(out), "w", format="mp4") as target:
        stream = target.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = (
            source.streams.video[0].width,
            source.streams.video[0].height,
            "yuv420p",
        )
        stream.options = {"g": gop, "keyint_min": gop, "sc_threshold": "0", "preset": "veryfast", "crf": "18"}
        for frame in source.decode(video=0):
            frame.pict_type = av.video.frame.PictureType.NONE
            for packet in stream.encode(frame):
                target.mux(packet)
        for packet in stream.encode():
            target.mux(packet)
    raw.unlink()
