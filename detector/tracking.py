"""A ByteTrack-style online tracker for person boxes, in vectorised numpy.

Why our own and not the `trackers` package (2.6.1): its trackers take and return supervision `Detections` (one more
large dependency and a conversion per frame), match by IoU alone (at 7 fps or in a fast pan a box and its track often
do not overlap at all) and keep their lost tracks private, while the per-video step needs each track's ends and kit
colours to stitch and label them. What is kept from ByteTrack: high-score boxes are matched first and start tracks;
low-score boxes only continue tracks seen in the previous frame. Added: motion in normalized units per second (any
frame rate, sampling, variable frame rate), a gate on centre distance in box heights besides IoU, and a camera-motion
estimate (the median displacement of the matched boxes) applied to every track, so a pan does not lose the lost ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from detector.boxes import ios, iou
from detector.kits import KIT_DIMENSIONS, kit_distance

# Low-score boxes (ByteTrack's second association) start here. Such a box is mostly a person partly hidden, and the
# kit colour sampled in it is often the person in front's or the background's: it neither gates the match nor feeds
# the track's kit (with the kit gate, the tracker found 0.82 of the people in 24 replayed scenes; without, 0.89)
LOW_SCORE = 0.2
FIRST_VELOCITY_S = 0.3  # a tracklet's starting velocity is measured over this long
DUPLICATE_IOS = 0.5  # an unmatched box this much inside (intersection over the smaller) a matched one is a duplicate
# On a frame between two full associations (`ByteTracker.carry`), a box continues the previous frame's box it overlaps
# by CARRY_IOU or more, when no other pair of the two frames' boxes overlaps by CARRY_RIVAL_IOU
CARRY_IOU = 0.5
CARRY_RIVAL_IOU = 0.1


@dataclass(frozen=True)
class TrackerOptions:
    """`high`: score that starts a track (the detector's threshold); `low`: the floor of boxes that may continue one;
    `max_lost_s`: how long a track unseen is kept; `gate`: the largest centre distance, in box heights, of a match
    one frame after the track was seen (it widens by `gate_per_s` per second unseen)."""

    high: float = 0.5
    low: float = LOW_SCORE
    max_lost_s: float = 2.0
    gate: float = 0.6
    gate_per_s: float = 1.0
    velocity_smoothing: float = 0.3  # the velocity's gain per 0.1 s: the filter's time constant is in seconds
    aspect: float = 1.0  # the frame's width / height: distances are measured in frame heights on both axes
    kit_gate: float = 25.0  # the largest kit colour distance of a match (see detector.kits.kit_distance)
    kit_weight: float = 1 / 40  # cost of a kit colour unit, in box heights
    ambiguity: float = 0.2  # a match another choice explains within this cost is left to the offline linking
    lost_cost: float = 0.3  # extra cost of a track unseen in the last frame: a box seen on, stays with its track


@dataclass
class Tracklet:
    """What the tracker learned of one track: its life, and its first and last box and velocity (xyxy and units per
    second, in frame heights: normalized x times the aspect ratio), which the per-video linking uses."""

    id: int
    first_t: float
    last_t: float
    first_box: np.ndarray
    last_box: np.ndarray
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))
    frames: int = 1
    # where the picture had moved (the camera's offset, frame heights) when the track started and was last seen:
    # linking compares boxes of different times in the scene's frame, not the picture's
    first_camera: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))
    last_camera: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))
    # the track's own velocity over its first FIRST_VELOCITY_S (None until then): linking checks both ends' motion
    first_velocity: np.ndarray | None = None


class ByteTracker:
    """`update(boxes, scores, t)` per frame in time order; state lives in the instance, ids count from 1."""

    def __init__(self, options: TrackerOptions = TrackerOptions()) -> None:
        self.options = options
        self.tracklets: dict[int, Tracklet] = {}
        self._next_id = 1
        self._t: float | None = None
        # the live tracks, column-wise: id, centre-size box (cx, cy, w, h), velocity (vx, vy), last seen
        self._ids = np.zeros(0, np.int32)
        self._cxcywh = np.zeros((0, 4), np.float32)
        self._velocity = np.zeros((0, 2), np.float32)
        self._seen = np.zeros(0, np.float64)
        self._kit = np.zeros((0, KIT_DIMENSIONS), np.float32)  # running mean of the kit colour (NaN: unknown)
        self._in_last = np.zeros(0, bool)  # matched in the previous frame (may take low-score boxes)
        self._camera = np.zeros(2, np.float32)  # how far the picture has moved since the first frame
        self._carried_camera: np.ndarray | None = None  # the camera's motion over the frames carried since `update`
        self._last_boxes = np.zeros((0, 4), np.float32)  # the previous frame's tracked boxes (normalized) and ids
        self._last_ids = np.zeros(0, np.int32)
        self._scale = np.array([options.aspect, 1, options.aspect, 1], np.float32)  # normalized xyxy to frame heights

    def update(
        self,
        boxes: np.ndarray,
        scores: np.ndarray,
        t: float,
        kits: np.ndarray | None = None,
        camera: np.ndarray | None = None,
    ) -> np.ndarray:
        """Track ids for the frame's person boxes (normalized xyxy): -1 for a low-score box that continues no track.
        `kits` (n, KIT_DIMENSIONS), the boxes' kit colours, keeps people in different kits apart when they cross.
        `camera`, how far the picture moved since the last frame (frame heights, `detector.camera`), moves every
        track with it; without it, the camera's motion is guessed from the boxes."""
        opts = self.options
        kits = np.full((len(boxes), KIT_DIMENSIONS), np.nan, np.float32) if kits is None else kits
        given = np.asarray(boxes, np.float32)
        boxes = given * self._scale
        dt = 0.0 if self._t is None else max(t - self._t, 1e-3)
        self._t = t
        self._cxcywh[:, :2] += self._velocity * dt
        measured = self._carried_camera  # the picture's motion since the last update, carried frames' included
        if measured is not None:
            self._pan(measured)
            self._carried_camera = None
        if camera is not None:
            self._pan(camera)
            measured = camera if measured is None else measured + camera
        ids = np.full(len(boxes), -1, np.int32)
        det = _to_cxcywh(boxes)
        high = np.flatnonzero(scores >= opts.high)
        low = np.flatnonzero((scores >= opts.low) & (scores < opts.high))
        gates = opts.gate + opts.gate_per_s * (t - self._seen)

        colours = kit_distance(self._kit, kits[high]) if len(self._kit) else np.zeros((0, len(high)))
        if camera is None:  # without the picture's own motion, guessed from the boxes
            pairs = self._match(self._cxcywh, det[high], gates, colours)
            if self._most_lost(pairs):  # the camera jumped
                self._pan(_camera_jump(self._cxcywh[self._in_last], det[high], opts.gate))
                pairs = self._match(self._cxcywh, det[high], gates, colours)
            if len(pairs) >= 3:  # the camera moved: shift every track by the median displacement of the matches
                self._pan(_median(det[high[pairs[:, 1]], :2] - self._cxcywh[pairs[:, 0], :2]))
        # the final association leaves ambiguous pairs to the linking
        pairs = self._match(self._cxcywh, det[high], gates, colours, margin=opts.ambiguity)
        if camera is not None and measured is not None:
            pairs = self._unless_camera_wrong(pairs, measured, det[high], gates, colours)
        tracks, dets = pairs[:, 0], high[pairs[:, 1]]
        free = self._in_last.copy()
        free[tracks] = False
        followed = kits[dets]
        if free.any() and len(low):  # kit colours play no part: see LOW_SCORE
            rows = np.flatnonzero(free)
            unknown = np.zeros((len(rows), len(low)))
            low_pairs = self._match(self._cxcywh[rows], det[low], np.full(len(rows), opts.gate / 2), unknown, 0.3)
            tracks = np.concatenate([tracks, rows[low_pairs[:, 0]]])
            dets = np.concatenate([dets, low[low_pairs[:, 1]]])
            followed = np.concatenate([followed, np.full((len(low_pairs), KIT_DIMENSIONS), np.nan, np.float32)])
        self._follow(tracks, det[dets], boxes[dets], t, followed)
        ids[dets] = self._ids[tracks]
        in_last = np.zeros(len(self._ids), bool)
        in_last[tracks] = True

        is_new = np.zeros(len(boxes), bool)
        is_new[high] = True
        is_new[dets] = False
        new = np.flatnonzero(is_new)
        if len(new) and len(dets):  # a second box on a person already tracked starts nothing
            new = new[ios(boxes[new], boxes[dets]).max(axis=1) < DUPLICATE_IOS]
        for d in new:
            ids[d] = self._start(det[d], boxes[d], t, kits[d])
        self._in_last = np.concatenate([in_last, np.ones(len(new), bool)])

        keep = t - self._seen <= opts.max_lost_s
        if not keep.all():
            self._ids, self._cxcywh, self._velocity = self._ids[keep], self._cxcywh[keep], self._velocity[keep]
            self._seen, self._in_last, self._kit = self._seen[keep], self._in_last[keep], self._kit[keep]
        self._velocity[~self._in_last] *= 0.5 ** (dt / 1.0)  # an unseen track's motion fades: people stop, turn
        tracked = ids >= 0
        self._last_boxes, self._last_ids = given[tracked], ids[tracked]
        return ids

    def carry(self, boxes: np.ndarray, scores: np.ndarray, t: float, camera: np.ndarray | None) -> np.ndarray | None:
        """The frame's track ids when it plainly continues the previous frame, else None (call `update`): each box
        tracked in the previous frame overlaps one box of this one (CARRY_IOU), one to one, no other pair of them
        overlaps (CARRY_RIVAL_IOU), the boxes left over are below the high score (`update` would start nothing with
        them: -1), and the camera's motion is known. Such a frame is a few hundredths of a second from the last at
        broadcast rates: the tracks' records move on (their last box and time, a frame more), while their motion
        state waits for the next `update`, which sees them as last seen at its own previous call."""
        if camera is None or (len(scores) and scores.min() < self.options.low):
            return None
        overlap = iou(self._last_boxes, boxes)
        strong = overlap >= CARRY_IOU
        matched = strong.any(axis=0)
        if (  # one to one: as many strong pairs as tracked boxes, in distinct rows and columns, and no other overlap
            (overlap >= CARRY_RIVAL_IOU).sum() != len(self._last_boxes)
            or matched.sum() != len(self._last_boxes)
            or not strong.any(axis=1).all()
            or (scores[~matched] >= self.options.high).any()
        ):
            return None
        ids = np.full(len(boxes), -1, np.int32)
        rows, columns = np.nonzero(strong)
        ids[columns] = self._last_ids[rows]
        carried = camera if self._carried_camera is None else self._carried_camera + camera
        self._carried_camera, self._last_boxes, self._last_ids = carried, boxes[matched], ids[matched]
        at_camera = self._camera + carried  # shared by this frame's records: never changed in place
        for track_id, box in zip(self._last_ids.tolist(), self._last_boxes * self._scale, strict=True):
            record = self.tracklets[track_id]
            record.last_t, record.last_box, record.last_camera = t, box, at_camera
            record.frames += 1
        return ids

    def _unless_camera_wrong(
        self, pairs: np.ndarray, measured: np.ndarray, dets: np.ndarray, gates: np.ndarray, colours: np.ndarray
    ) -> np.ndarray:
        """A wrong peak of the camera's correlation (a repeating pattern, a cut it did not see) moves every track off
        at once: when most tracks seen in the last frame found no box, the association without the measured motion is
        kept if it follows more tracks."""
        if not self._most_lost(pairs):
            return pairs
        still = self._cxcywh.copy()
        still[:, :2] -= measured
        retry = self._match(still, dets, gates, colours, margin=self.options.ambiguity)
        if len(retry) <= len(pairs):
            return pairs
        self._pan(-measured)
        return retry

    def _most_lost(self, pairs: np.ndarray) -> bool:
        """Whether most of the tracks seen in the last frame (two or more) found no box in `pairs`: all lost at once,
        the picture jumped, or its measured motion is wrong."""
        live = int(np.count_nonzero(self._in_last))
        return live >= 2 and len(pairs) < live / 2

    def _pan(self, shift: np.ndarray) -> None:
        """Move every track with the picture (frame heights), and count it in the camera's offset."""
        self._cxcywh[:, :2] += shift
        self._camera += shift

    def _match(
        self,
        tracks: np.ndarray,
        dets: np.ndarray,
        gates: np.ndarray,
        colours: np.ndarray,
        min_iou: float = 0.0,
        margin: float = 0.0,
    ) -> np.ndarray:
        opts = self.options
        appearance = np.where(colours > opts.kit_gate, np.inf, colours * opts.kit_weight)
        if len(tracks) == len(self._in_last):  # all tracks (the low-score pass gives only those in the last frame)
            appearance = appearance + np.where(self._in_last, 0.0, opts.lost_cost)[:, None]
        return _match(tracks, dets, gates, appearance, min_iou, margin)

    def _follow(self, rows: np.ndarray, cxcywh: np.ndarray, boxes: np.ndarray, t: float, kits: np.ndarray) -> None:
        """Move the tracks at `rows` to their matched boxes."""
        elapsed = t - self._seen[rows]  # an alpha-beta filter: the velocity moves towards what the prediction missed by
        gain = np.where(elapsed > 0, 1 - (1 - self.options.velocity_smoothing) ** (elapsed / 0.1), 0.0)  # 0.3 at 10 fps
        self._velocity[rows] += (gain / np.maximum(elapsed, 1e-6))[:, None] * (cxcywh[:, :2] - self._cxcywh[rows, :2])
        self._cxcywh[rows] = cxcywh
        self._seen[rows] = t
        kept = self._kit[rows]  # blended with the new sample; where either is unknown (NaN), the other
        blend = 0.8 * kept + 0.2 * kits
        self._kit[rows] = np.where(np.isnan(blend), np.fmax(kept, kits), blend)
        camera = self._camera.copy()  # shared by this frame's records: never changed in place
        velocities = self._velocity[rows]  # a copy: the records keep this frame's
        ids = self._ids[rows].tolist()
        for track_id, row, box, velocity in zip(ids, rows.tolist(), boxes, velocities, strict=True):
            record = self.tracklets[track_id]
            record.last_camera = camera
            if record.first_velocity is None:  # a young track: its displacement since it started, in the scene
                moved = box - record.first_box  # both corners: their mean is the centre's displacement
                velocity = ((moved[:2] + moved[2:]) / 2 - (camera - record.first_camera)) / (t - record.first_t)
                self._velocity[row] = velocity  # (a velocity filter started from zero lags for many frames)
                if t - record.first_t >= FIRST_VELOCITY_S:
                    record.first_velocity = velocity
            record.last_t, record.last_box, record.velocity = t, box, velocity
            record.frames += 1

    def _start(self, cxcywh: np.ndarray, box: np.ndarray, t: float, kit: np.ndarray) -> int:
        track_id = self._next_id
        self._next_id += 1
        self._ids = np.append(self._ids, np.int32(track_id))
        self._cxcywh = np.vstack([self._cxcywh, cxcywh[None]])
        self._velocity = np.vstack([self._velocity, np.zeros((1, 2), np.float32)])
        self._seen = np.append(self._seen, t)
        self._kit = np.vstack([self._kit, kit[None]])
        camera = self._camera.copy()
        self.tracklets[track_id] = Tracklet(track_id, t, t, box, box, first_camera=camera, last_camera=camera)
        return track_id


def _camera_jump(tracks: np.ndarray, dets: np.ndarray, gate: float) -> np.ndarray:
    """The shift of the whole picture that brings the most tracks within `gate` of a box (a pan faster than the
    tracks' motion predicts, or its reversal): each track-to-box displacement is a candidate. Zero if none brings
    two."""
    if not len(tracks) or not len(dets):
        return np.zeros(2, np.float32)
    shifts = (dets[None, :, :2] - tracks[:, None, :2]).reshape(-1, 2)
    moved = tracks[None, :, None, :2] + shifts[:, None, None, :]
    distance = np.linalg.norm(moved - dets[None, None, :, :2], axis=3) / tracks[None, :, None, 3]
    support = (distance.min(axis=2) <= gate).sum(axis=1)
    best = int(np.argmax(support))
    return shifts[best] if support[best] >= 2 else np.zeros(2, np.float32)


def _median(rows: np.ndarray) -> np.ndarray:
    """The per-column median of a few rows, as np.median gives it, which costs 0.1 ms a call."""
    ordered = np.sort(rows, axis=0)
    middle = len(rows) // 2
    return ordered[middle] if len(rows) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    size = boxes[:, 2:] - boxes[:, :2]
    return np.concatenate([boxes[:, :2] + size / 2, size], axis=1)


def _iou(tracks: np.ndarray, dets: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """IoU of centre-size boxes whose centre offsets are known: the overlap on each axis is the half sizes' sum less
    the offset, at most the smaller size (`boxes.iou` on corners costs twice as much, on every frame)."""
    a, b = tracks[:, None, 2:], dets[None, :, 2:]
    overlap = np.maximum(np.minimum(np.minimum(a, b), (a + b) / 2 - np.abs(offset)), 0)
    inter = overlap[..., 0] * overlap[..., 1]
    union = a[..., 0] * a[..., 1] + b[..., 0] * b[..., 1] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _match(
    tracks: np.ndarray,
    dets: np.ndarray,
    gates: np.ndarray,
    appearance: np.ndarray,
    min_iou: float = 0.0,
    margin: float = 0.0,
) -> np.ndarray:
    """(k, 2) pairs of (track row, det row), greedy on cost = centre distance in box heights - IoU + `appearance`
    (inf: never): within each track's gate, of similar height, and overlapping at least `min_iou`. With a `margin`,
    a pair is left out when another choice costs less than `margin` more (see `_ambiguous`)."""
    if not len(tracks) or not len(dets):
        return np.zeros((0, 2), int)
    heights = (tracks[:, None, 3] + dets[None, :, 3]) / 2
    offset = tracks[:, None, :2] - dets[None, :, :2]
    distance = np.hypot(offset[..., 0], offset[..., 1]) / np.maximum(heights, 1e-6)
    overlap = _iou(tracks, dets, offset)
    ratio = dets[None, :, 3] / np.maximum(tracks[:, None, 3], 1e-6)
    allowed = (distance <= gates[:, None]) & (ratio > 0.6) & (ratio < 1 / 0.6) & (overlap >= min_iou)
    cost = np.where(allowed, distance - overlap + appearance, np.inf).ravel()
    order = np.argsort(cost, kind="stable")
    columns = cost.size // len(tracks)
    pairs = []
    used_rows: set[int] = set()
    used_columns: set[int] = set()
    candidates = order[np.isfinite(cost[order])]
    for flat in candidates.tolist():
        r, c = divmod(flat, columns)
        if r not in used_rows and c not in used_columns:
            pairs.append((r, c))
            used_rows.add(r)
            used_columns.add(c)
    matched = np.array(pairs, int).reshape(-1, 2)
    if margin > 0 and len(candidates) > len(matched):  # else no track or box had another choice
        matched = matched[~_ambiguous(cost.reshape(len(tracks), columns), matched, margin)]
    return matched


def _ambiguous(cost: np.ndarray, pairs: np.ndarray, margin: float) -> np.ndarray:
    """Which pairs another assignment explains almost as well: a track left unmatched could take the box for less
    than `margin` more, or two pairs swapped cost less than `margin` more in all. Two people in the same kit
    crossing or overtaking at a low frame rate look like that; guessing there swaps identities for good, while
    leaving both tracks and starting new ones lets the offline linking decide with the whole tracklets in view."""
    rows, columns = pairs[:, 0], pairs[:, 1]
    own = cost[rows, columns]
    others = cost[:, columns]  # the matched boxes' columns, the matched tracks' rows made impossible
    others[rows] = np.inf
    rival = others.min(axis=0)
    swapped = cost[rows[:, None], columns]  # [i, j]: track of pair i on the box of pair j
    close = swapped + swapped.T < own[:, None] + own[None, :] + margin
    np.fill_diagonal(close, False)
    return (rival < own + margin) | close.any(axis=1)
