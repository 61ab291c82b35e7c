"""MOTChallenge CSV from a tracked detections document, for the usual tracking tools (TrackEval, py-motmetrics).

One line per tracked person box: `frame, id, bb_left, bb_top, bb_width, bb_height, conf, -1, -1, -1`, with frames
counted from 1 (the document's `index` + 1) and boxes in pixels of the document's frame size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detector.errors import DetectorError
from detector.output import AtomicFile


def mot_lines(document: dict[str, Any]) -> list[str]:
    if "tracks" not in document:
        raise DetectorError("the detections have no tracks (made with --no-track, from images, or before tracking)")
    video = document.get("video") or {}
    width, height = video.get("width"), video.get("height")
    if not width or not height:
        raise DetectorError("the detections do not say the frame size, which MOTChallenge boxes need")
    lines = []
    for frame in document["frames"]:
        for det in frame["detections"]:
            if det["label"] != "person" or "track" not in det:
                continue
            x0, y0, x1, y1 = det["box"]
            left, top, w, h = x0 * width, y0 * height, (x1 - x0) * width, (y1 - y0) * height
            lines.append(
                f"{int(frame['index']) + 1},{det['track']},{left:.2f},{top:.2f},{w:.2f},{h:.2f},{det['score']},-1,-1,-1"
            )
    return lines


def write_mot(document: dict[str, Any], path: Path) -> int:
    """Write the CSV atomically; returns the number of boxes written."""
    lines = mot_lines(document)
    with AtomicFile(path, ".txt") as out:
        out.tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return len(lines)
