"""ByteTrack over the same boxes: the baseline the tracker is judged against (the issue's "IDF1 far above ByteTrack's,
recall up at precision >= 0.8").

Roboflow's `trackers` ByteTrack (2.6.1) is given what `detect`'s tracker is given, frame by frame: the person boxes
from the low score (0.2) up, with their scores and times, in pixels. Its own defaults stand (lost for 1 s at most,
IoU >= 0.1, two frames to confirm), except the score that counts as high and may start a track: the detector's
threshold, as in `detect`. What it reports is scored like `detect`'s output: the boxes it gives a track.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

from detector.detections import Detections


def bytetrack_frames(
    frames: Sequence[tuple[int, Detections, float]], width: int, height: int, threshold: float
) -> list[dict[str, Any]]:
    """Each (index, detections before tracking, t) in time order, as schema frames of ByteTrack's tracked people."""
    tracker = ByteTrackTracker(high_conf_det_threshold=threshold, track_activation_threshold=threshold)
    scale = np.array([width, height, width, height], np.float64)
    out = []
    for index, detections, t in frames:
        people = detections.labels == "person"
        boxes = detections.boxes[people].astype(np.float64) * scale
        tracked = tracker.update(sv.Detections(xyxy=boxes, confidence=detections.scores[people]), timestamp=t)
        ids = np.full(len(tracked), -1) if tracked.tracker_id is None else tracked.tracker_id
        found = [
            {"label": "person", "box": (box / scale).round(6).tolist(), "track": int(track)}
            for box, track in zip(tracked.xyxy, ids, strict=True)
            if track >= 0
        ]
        out.append({"index": index, "t": t, "detections": found})
    return out
