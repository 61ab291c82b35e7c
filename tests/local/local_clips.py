"""The detector's sample clip, re-encoded with a keyframe every second so the split makes one chunk per second."""

from __future__ import annotations

import shutil
from pathlib import Path

import av

from detector.sample import SampleSpec, write_sample

SMALL = SampleSpec(width=480, height=270, seconds=3.0, fps=10, people=2)


def sample_with_keyframes(out: Path, spec: SampleSpec = SMALL) -> Path:
    """Write `out` and `<stem>.gt.json` (the sample's ground truth; re-encoding keeps every frame)."""
    raw = out.with_name(out.stem + ".raw.mp4")
    gt = write_sample(raw, spec)
    with av.open(str(raw)) as source, av.open(str(out), "w", format="mp4") as target:
        stream = target.add_stream("libx264", rate=spec.fps)
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        gop = str(spec.fps)
        stream.options = {"g": gop, "keyint_min": gop, "sc_threshold": "0", "preset": "veryfast", "crf": "18"}
        for frame in source.decode(video=0):
            frame.pict_type = av.video.frame.PictureType.NONE
            for packet in stream.encode(frame):
                target.mux(packet)
        for packet in stream.encode():
            target.mux(packet)
    truth = out.with_name(out.stem + ".gt.json")
    shutil.move(gt, truth)
    raw.unlink()
    return truth
