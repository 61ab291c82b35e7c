"""The tracking replay on a short generated scene, on the real models: what `detect`'s tracker makes of the boxes it
is given, next to ByteTrack (`trackers`) over the same boxes."""

from __future__ import annotations

from pathlib import Path

from detector.analyzer import AnalyzeOptions, VideoAnalyzer
from detector.sample_match import MatchSpec
from devtools.tracking_replay import record, replay


def test_the_tracker_keeps_identities_bytetrack_loses_over_the_same_boxes(tmp_path: Path) -> None:
    # a panning camera at 7 fps: boxes of one person in consecutive frames often do not overlap
    record(MatchSpec(seconds=10.0, fps=7.0, pan=0.15, seed=2), tmp_path, VideoAnalyzer(AnalyzeOptions()))
    replayed = replay(tmp_path, chunk_seconds=5.0)
    ours, baseline = replayed.single, replayed.bytetrack
    assert ours.idf1 >= baseline.idf1 + 0.2, (ours, baseline)
    assert ours.id_switches < baseline.id_switches, (ours, baseline)
    # the low-score boxes raise recall as ByteTrack's do, without false boxes
    assert ours.recall >= baseline.recall - 0.05 and ours.precision >= 0.95, (ours, baseline)
    assert replayed.pipeline.border_switches == 0 and replayed.pipeline.idf1 >= 0.9 * ours.idf1, replayed.pipeline
