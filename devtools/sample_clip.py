"""A synthetic H.264 clip made with PyAV's libx264 (offline, deterministic): for the bench and the tests."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def make_clip(path: Path, seconds: float = 6.0, fps: int = 25, gop: int = 25, size: tuple[int, int] = (96, 64)) -> int:
    """Write a clip with a keyframe every `gop` frames and B-frames on; returns the frame count."""
    width, height = size
    frames = int(seconds * fps)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "bf": "2", "preset": "ultrafast"}
        for i in range(frames):
            image = np.full((height, width, 3), (i * 7) % 256, dtype=np.uint8)
            image[:, : (i % width)] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return frames
