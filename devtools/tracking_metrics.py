"""Tracking scores against generated ground truth (`detector.sample_match`): IDF1, identity switches, team accuracy.

Matching is per frame, one-to-one at IoU >= 0.5 (greedy, best overlap first). Truth boxes less than half visible are
"don't care", as in MOTChallenge: a tracked box on one counts neither way. IDF1 (Ristani et al. 2016) maps truth ids
to track ids one-to-one over the whole clip so as to maximise the frames where both agree.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from detector.boxes import iou

MIN_IOU = 0.5
MIN_VISIBILITY = 0.5


@dataclass(frozen=True)
class TrackingScore:
    idf1: float
    id_switches: int
    border_switches: int  # of id_switches, those where the frame before the switch is in an earlier chunk
    team_accuracy: float
    recall: float
    precision: float
    truth_ids: int
    track_ids: int


def _pairs(truth: list[dict[str, Any]], found: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """(truth index, found index) matched at IoU >= MIN_IOU, greedy on overlap."""
    if not truth or not found:
        return []
    overlaps = iou(np.array([d["box"] for d in truth]), np.array([d["box"] for d in found]))
    pairs = []
    while overlaps.size and overlaps.max() >= MIN_IOU:
        t, f = np.unravel_index(np.argmax(overlaps), overlaps.shape)
        pairs.append((int(t), int(f)))
        overlaps[t, :] = -1
        overlaps[:, f] = -1
    return pairs


def _people(frame: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in frame["detections"] if d["label"] == "person"]


def score_tracking(result: dict[str, Any], truth: dict[str, Any], borders: Iterable[int] = ()) -> TrackingScore:
    """Score a tracked detections document against the truth of the same clip (frames matched by index); `borders`
    are the first frame indices of chunks after the first."""
    truth_frames = {int(f["index"]): _people(f) for f in truth["frames"]}
    border_set = set(borders)
    co = Counter[tuple[int, int]]()  # (truth id, track id) -> frames matched
    truth_count = Counter[int]()
    track_count = Counter[int]()
    teams = Counter[tuple[str, str]]()  # (truth team, found team) per matched box
    last_track: dict[int, tuple[int, int]] = {}  # truth id -> (track id, frame index) when last matched
    switches = border_switches = matched = found_total = truth_total = 0
    for frame in sorted(result["frames"], key=lambda f: int(f["index"])):
        index = int(frame["index"])
        expected = truth_frames.get(index, [])
        found = [d for d in _people(frame) if "track" in d]
        pairs = _pairs(expected, found)
        ignored = {f for t, f in pairs if expected[t].get("visibility", 1.0) < MIN_VISIBILITY}
        scored_truth = [t for t, d in enumerate(expected) if d.get("visibility", 1.0) >= MIN_VISIBILITY]
        truth_count.update(int(expected[t]["track"]) for t in scored_truth)
        track_count.update(int(d["track"]) for f, d in enumerate(found) if f not in ignored)
        truth_total += len(scored_truth)
        found_total += len(found) - len(ignored)
        for t, f in pairs:
            if f in ignored:
                continue
            gt_id, track = int(expected[t]["track"]), int(found[f]["track"])
            co[gt_id, track] += 1
            matched += 1
            teams[str(expected[t]["team"]), str(found[f].get("team"))] += 1
            previous = last_track.get(gt_id)
            if previous is not None and previous[0] != track:
                switches += 1
                border_switches += any(previous[1] < b <= index for b in border_set)
            last_track[gt_id] = (track, index)
    idtp = _best_assignment(co)
    denominator = sum(truth_count.values()) + sum(track_count.values())
    return TrackingScore(
        idf1=2 * idtp / denominator if denominator else 1.0,
        id_switches=switches,
        border_switches=border_switches,
        team_accuracy=_team_accuracy(teams),
        recall=matched / truth_total if truth_total else 1.0,
        precision=matched / found_total if found_total else 1.0,
        truth_ids=len(truth_count),
        track_ids=len(track_count),
    )


def _team_accuracy(teams: Counter[tuple[str, str]]) -> float:
    """Share of matched boxes whose team is right, under the best renaming of the found team labels (labels are
    arbitrary per video; "official" must stay "official")."""
    total = sum(teams.values())
    if not total:
        return 1.0
    truth_labels = sorted({t for t, _ in teams} - {"official"})
    found_labels = sorted({f for _, f in teams} - {"official", "None"})
    best = 0
    for perm in itertools.permutations(found_labels, min(len(found_labels), len(truth_labels))):
        rename = dict(zip(perm, truth_labels, strict=False)) | {"official": "official"}
        best = max(best, sum(n for (t, f), n in teams.items() if rename.get(f) == t))
    return best / total


def _best_assignment(co: Counter[tuple[int, int]]) -> int:
    """The largest total of `co` over a one-to-one mapping of truth ids to track ids (Hungarian method)."""
    if not co:
        return 0
    rows = sorted({r for r, _ in co})
    cols = sorted({c for _, c in co})
    n = max(len(rows), len(cols))
    gain = np.zeros((n, n))
    for (r, c), v in co.items():
        gain[rows.index(r), cols.index(c)] = v
    assignment = _hungarian(gain.max() - gain)
    return int(sum(gain[r, c] for r, c in enumerate(assignment)))


def _hungarian(cost: np.ndarray) -> list[int]:
    """Column for each row of a square cost matrix at minimum total cost (potentials and augmenting paths, O(n^3))."""
    n = len(cost)
    u, v = np.zeros(n + 1), np.zeros(n + 1)
    match = np.zeros(n + 1, int)  # match[column] = row, 1-based; 0: free
    way = np.zeros(n + 1, int)
    for row in range(1, n + 1):
        match[0] = row
        column = 0
        minv = np.full(n + 1, np.inf)
        used = np.zeros(n + 1, bool)
        while True:
            used[column] = True
            r = match[column]
            delta, nxt = np.inf, 0
            for j in range(1, n + 1):
                if not used[j]:
                    current = cost[r - 1, j - 1] - u[r] - v[j]
                    if current < minv[j]:
                        minv[j], way[j] = current, column
                    if minv[j] < delta:
                        delta, nxt = minv[j], j
            for j in range(n + 1):
                if used[j]:
                    u[match[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            column = nxt
            if match[column] == 0:
                break
        while column:
            previous = way[column]
            match[column] = match[previous]
            column = previous
    result = [0] * n
    for j in range(1, n + 1):
        result[match[j] - 1] = j - 1
    return result
