"""The tracker, linking and team clustering on hand-made boxes (no model): what each rule is for."""

from __future__ import annotations

import cv2
import numpy as np

from detector.boxes import iou
from detector.camera import CameraMotion
from detector.detections import Detections
from detector.kits import OFFICIAL, OFFICIAL_STRIPES, assign_teams, kit_distance, kit_samples
from detector.tracking import ByteTracker, _iou
from detector.tracks import Segment, link
from detector.video_tracks import VideoTracks

RED, BLUE, STRIPES = [45.0, 50.0, 35.0, 0.0], [40.0, 15.0, -45.0, 0.0], [50.0, 0.0, 0.0, 0.3]


def _box(x: float, y: float, w: float = 0.1, h: float = 0.25) -> list[float]:
    return [x, y, x + w, y + h]


def test_low_score_boxes_continue_tracks_but_start_none() -> None:
    tracker = ByteTracker()
    assert tracker.update(np.array([_box(0.1, 0.1)]), np.array([0.9]), 0.0).tolist() == [1]
    # the person fades to a low score and a low-score box appears elsewhere: only the first is kept
    ids = tracker.update(np.array([_box(0.11, 0.1), _box(0.6, 0.6)]), np.array([0.3, 0.3]), 0.04)
    assert ids.tolist() == [1, -1]


def test_a_fast_pan_at_7_fps_keeps_every_identity() -> None:
    """The camera sweeps 0.12 of the frame per frame (more than a box width: no box overlaps its last position),
    then turns back."""
    tracker = ByteTracker()
    starts = [0.05, 0.3, 0.55, 0.8]
    for frame in range(12):
        pan = -0.12 * min(frame, 12 - frame)
        boxes = np.array([_box(x + pan, 0.3) for x in starts])
        assert tracker.update(boxes, np.full(4, 0.9), frame / 7).tolist() == [1, 2, 3, 4]


def test_people_in_different_kits_keep_their_ids_when_crossing() -> None:
    tracker = ByteTracker()
    kits = np.array([RED, BLUE], np.float32)
    for frame in range(30):
        x = 0.02 * frame
        boxes = np.array([_box(0.1 + x, 0.3), _box(0.7 - x, 0.32)])
        assert tracker.update(boxes, np.full(2, 0.9), frame / 25, kits).tolist() == [1, 2], frame


def test_ids_are_per_tracker() -> None:
    """State lives in the instance: a second video starts again at 1."""
    for _ in range(2):
        assert ByteTracker().update(np.array([_box(0.1, 0.1)]), np.array([0.9]), 0.0).tolist() == [1]


def _segment(id_: int, first_t: float, last_t: float, first_x: float, last_x: float, kit: list[float]) -> Segment:
    return Segment(
        id_, first_t, last_t, np.array(_box(first_x, 0.3)), np.array(_box(last_x, 0.3)), np.zeros(2), 20,
        np.array(kit, np.float32),
    )  # fmt: skip


def test_linking_joins_a_return_and_keeps_kits_apart() -> None:
    left = _segment(1, 0.0, 2.0, 0.5, 0.9, RED)  # walks out at the right edge
    returns = _segment(2, 4.0, 6.0, 0.9, 0.5, RED)  # comes back there two seconds later
    stranger = _segment(3, 4.0, 6.0, 0.88, 0.5, BLUE)  # another kit, same place, same time
    far = _segment(4, 2.5, 6.0, 0.05, 0.2, RED)  # the same kit, but across the field at once
    assert link([left, returns, stranger, far]) == {1: 1, 2: 1, 3: 3, 4: 4}


def test_teams_by_colour_and_officials_by_stripes() -> None:
    kits = {1: RED, 2: BLUE, 3: [47.0, 45.0, 30.0, 0.0], 4: STRIPES, 5: [38.0, 12.0, -40.0, 0.0], 6: RED}
    labels = assign_teams({k: np.array(v, np.float32) for k, v in kits.items()}, 2)
    assert labels[4] == OFFICIAL
    assert labels[1] == labels[3] == labels[6] == "A"  # the larger group is A
    assert labels[2] == labels[5] == "B"
    assert np.isinf(kit_distance(np.array([RED]), np.array([STRIPES]))).all()


def test_a_plain_coloured_official_is_the_colour_fewest_people_wear_at_once() -> None:
    """A third colour, far from both teams, that one person at a time wears (in two tracks, and a stray moment) is the
    officials'; worn by two at once, it is no official's, and neither is a team's second shade."""
    black = [15.0, 3.0, 1.0, 0.0]
    kits = {1: RED, 2: RED, 3: BLUE, 4: BLUE, 5: black, 6: black, 7: black}
    spans = {1: (0.0, 30.0), 2: (0.0, 25.0), 3: (0.0, 30.0), 4: (5.0, 30.0), 5: (0.0, 10.0), 6: (12.0, 30.0)}
    spans[7] = (20.0, 20.5)  # a stray box's track, while 6 is in view
    as_arrays = {k: np.array(v, np.float32) for k, v in kits.items()}
    labels = assign_teams(as_arrays, 2, spans)
    assert labels[5] == labels[6] == labels[7] == OFFICIAL, labels
    assert labels[1] == labels[2] != labels[3] == labels[4] != OFFICIAL, labels
    assert OFFICIAL not in assign_teams(as_arrays, 2, {**spans, 6: (5.0, 30.0)}).values()  # two in black at once
    shades = {**as_arrays, 5: np.array([45.0, 38.0, 28.0, 0.0], np.float32), 6: as_arrays[1], 7: as_arrays[3]}
    assert OFFICIAL not in assign_teams(shades, 2, spans).values()


def test_stripes_are_black_and_white_alternating_not_a_white_shirt_over_dark_shorts() -> None:
    """The kit's stripe figure (its last column) is high for vertical stripes and horizontal hoops, but 0 for a kit
    that is half near-white and half near-black in one block each (a white shirt over black shorts), which has as
    much of both, and for a white shirt with a dark patch in a few rows (hair, a number)."""
    white, black = np.full((80, 60, 3), 235, np.uint8), np.full((80, 60, 3), 20, np.uint8)
    columns = (np.arange(60) // 5) % 2 == 0  # 12 stripes
    stripes = np.where(columns[None, :, None], white, black)
    hoops = np.where(((np.arange(80) // 6) % 2 == 0)[:, None, None], white, black)
    shirt_over_shorts = np.concatenate([white[:40], black[40:]])
    hair_over_shirt = white.copy()
    hair_over_shirt[:30, 20:40] = 20  # dark hair (or a number) in the middle of a few rows: light-dark-light there
    picture = np.concatenate([stripes, hoops, shirt_over_shorts, hair_over_shirt], axis=1)
    regions = np.array([[i / 4, 0.0, (i + 1) / 4, 1.0] for i in range(4)], np.float32)
    figure = kit_samples([picture], [regions])[0][:, 3]
    assert (figure[:2] >= OFFICIAL_STRIPES).all(), figure
    assert (figure[2:] == 0).all(), figure


def test_a_batch_of_frames_samples_each_frames_kits_as_alone() -> None:
    """Kit colours are sampled for a whole batch of frames at once: each frame's rows are the ones it gets alone,
    whatever the other frames' sizes and box counts (none, or too small to sample)."""
    rng = np.random.default_rng(1)
    small, large = rng.integers(0, 256, (90, 160, 3), np.uint8), rng.integers(0, 256, (300, 200, 3), np.uint8)
    boxes = np.array([[0.1, 0.1, 0.5, 0.9], [0.5, 0.2, 0.9, 0.6], [0.3, 0.3, 0.301, 0.31]], np.float32)
    images, regions = [small, large, small], [boxes[:2], boxes[1:], np.zeros((0, 4), np.float32)]
    batch = kit_samples(images, regions)
    assert [len(kits) for kits in batch] == [2, 2, 0]
    for image, region, kits in zip(images, regions, batch, strict=True):
        np.testing.assert_array_equal(kits, kit_samples([image], [region])[0])
    assert np.isnan(batch[1][1]).all() and not np.isnan(batch[0]).any()  # a 0.2-pixel-wide box has no kit
    assert not np.array_equal(batch[0][1], batch[1][0])  # the same box, another picture


def test_kit_samples_of_a_batch_whose_first_frame_has_no_people() -> None:
    """A batch may start with frames where nobody was found: the next frame's kits are still its own."""
    rng = np.random.default_rng(2)
    empty, image = rng.integers(0, 256, (90, 160, 3), np.uint8), rng.integers(0, 256, (300, 200, 3), np.uint8)
    boxes = np.array([[0.1, 0.1, 0.5, 0.9], [0.5, 0.2, 0.9, 0.6]], np.float32)
    batch = kit_samples([empty, image], [np.zeros((0, 4), np.float32), boxes])
    assert len(batch[0]) == 0
    np.testing.assert_array_equal(batch[1], kit_samples([image], [boxes])[0])


def test_camera_motion_is_measured_on_the_background_not_the_people() -> None:
    """A textured picture pans 6 px right to left while a 'person' (a bright block, blanked out by its box) walks
    the other way: the measured shift is the picture's."""
    rng = np.random.default_rng(0)
    field = cv2.GaussianBlur(rng.integers(0, 255, (180, 700, 3), np.uint8), (0, 0), 2)
    camera = CameraMotion(aspect=320 / 180)
    shifts = []
    for frame in range(4):
        image = np.ascontiguousarray(field[:, 6 * frame : 6 * frame + 320])
        x = 100 + 20 * frame
        image[60:160, x : x + 40] = 255
        shifts.append(camera.shift(image, frame / 10, np.array([[x / 320, 60 / 180, (x + 40) / 320, 160 / 180]])))
    assert shifts[0] is None  # nothing to compare the first frame with
    for shift in shifts[1:]:
        assert shift is not None
        assert abs(shift[0] * 180 + 6) < 1.5 and abs(shift[1] * 180) < 1.5  # frame heights: 6 px of 180 to the left


def test_at_25_fps_the_frames_between_measurements_get_the_measured_velocity() -> None:
    """A pan speeding up from 4 to 10 px a frame at 25 fps: the picture is correlated on every second frame only,
    the frames between get the last measured velocity, and each measurement corrects what the guesses missed, so the
    camera's offset is right again on every measured frame (at 10 fps every frame is measured: the test above)."""
    rng = np.random.default_rng(0)
    field = cv2.GaussianBlur(rng.integers(0, 255, (180, 700, 3), np.uint8), (0, 0), 2)
    steps = [4, 4, 4, 10, 10, 10, 10, 10]
    offsets = np.cumsum([0, *steps])
    camera = CameraMotion(aspect=320 / 180)
    moved = []
    for frame, offset in enumerate(offsets.tolist()):
        shift = camera.shift(np.ascontiguousarray(field[:, offset : offset + 320]), frame / 25)
        moved.append(None if shift is None else -float(shift[0]) * 180)  # px the picture moved left
    assert moved[0] is None and all(m is not None for m in moved[1:])
    total = np.cumsum([0.0, *moved[1:]])
    measured = [1, 3, 5, 7]  # each 0.08 s after the one before; the frames between are 0.04 s after
    assert np.abs(total[measured] - offsets[measured]).max() < 3  # four measurements of about a pixel each
    assert abs(moved[4] - 4) < 1.5  # a guess: the velocity measured over frames 1-3, before the pan sped up
    assert abs(moved[6] - 10) < 1.5


def test_a_second_box_on_a_person_is_dropped_in_its_own_frame_only() -> None:
    """A box lying inside a better one of its frame (a person's half cut by a tile border) is no second person; in
    the next frame of the batch, without the better box, it is the person (and the face in it is theirs)."""
    whole, half, face = _box(0.3, 0.2), _box(0.3, 0.2, h=0.12), _box(0.33, 0.21, w=0.04, h=0.04)
    first = Detections(np.array([whole, half, face], np.float32), np.array([0.9, 0.6, 0.8], np.float32),
                       np.array(["person", "person", "face"]))  # fmt: skip
    second = Detections(
        np.array([face, half], np.float32), np.array([0.8, 0.6], np.float32), np.array(["face", "person"])
    )
    tracks = VideoTracks(threshold=0.5, teams=2, aspect=16 / 9)
    one, two = tracks.step_batch([(first, 0.0, None), (second, 0.1, None)])
    assert one.labels.tolist() == ["person", "face"] and one.track_ids.tolist() == [1, 1]
    assert two.labels.tolist() == ["face", "person"] and two.track_ids[0] == two.track_ids[1] > 0


def test_an_ambiguous_match_starts_a_new_tracklet_instead_of_guessing() -> None:
    """Two people in one kit: a box that either of two tracks explains about as well continues neither."""
    tracker = ByteTracker()
    two = np.array([_box(0.30, 0.3), _box(0.40, 0.3)])
    assert tracker.update(two, np.full(2, 0.9), 0.0, camera=np.zeros(2)).tolist() == [1, 2]
    # one box, half way between both (the other person hidden): either could be it
    ids = tracker.update(np.array([_box(0.35, 0.3)]), np.full(1, 0.9), 0.1, camera=np.zeros(2))
    assert ids.tolist() == [3]


def test_linking_follows_both_ends_motion() -> None:
    """A ends moving right; two tracklets start just after, next to where A was: the one moving on to the right
    continues A, not the one walking back to the left."""
    a = Segment(1, 0.0, 2.0, np.array(_box(0.5, 0.3)), np.array(_box(0.5, 0.3)), np.array([0.3, 0.0]), 20, None)
    back = Segment(
        2, 2.15, 4.0, np.array(_box(0.53, 0.3)), np.array(_box(0.1, 0.3)), np.zeros(2), 20, None, np.array([-0.3, 0.0])
    )
    on = Segment(
        3, 2.15, 4.0, np.array(_box(0.56, 0.3)), np.array(_box(0.9, 0.3)), np.zeros(2), 20, None, np.array([0.3, 0.0])
    )
    assert link([a, back, on]) == {1: 1, 2: 2, 3: 1}


def test_a_young_tracklets_end_velocity_counts_less() -> None:
    """A tracklet followed for a few frames ends with a velocity that is mostly noise (at a chunk's start every
    tracklet is that young): B starting right where it ended continues it. The same velocity at the end of two
    seconds followed is believed: B is not where that A was heading."""
    away = np.array([1.0, 0.5])  # box heights are 0.25: half a second on, A would be two box heights away
    ended = np.array(_box(0.5, 0.3))
    b = Segment(3, 1.0, 3.0, np.array(_box(0.52, 0.3)), np.array(_box(0.9, 0.3)), np.zeros(2), 20, None)
    young = Segment(1, 0.1, 0.5, np.array(_box(0.45, 0.3)), ended, away, 5, None)
    followed = Segment(2, -1.5, 0.5, np.array(_box(0.1, 0.3)), ended, away, 20, None)
    assert link([young, b]) == {1: 1, 3: 1}
    assert link([followed, b]) == {2: 2, 3: 3}


def test_the_trackers_iou_from_centres_is_the_iou_of_the_corners() -> None:
    """The association's IoU works on centre-size boxes and the centre offsets it has already: the same figures as
    `boxes.iou` on the corners, for boxes apart, touching, overlapping and nested."""
    rng = np.random.default_rng(3)
    tracks, dets = rng.uniform(0.05, 0.3, (40, 4)), rng.uniform(0.05, 0.3, (30, 4))
    tracks[:, :2] += 0.3
    dets[:, :2] += 0.3
    dets[:5] = tracks[:5] * [1, 1, 0.5, 0.5]  # nested: same centre, half the size
    offset = tracks[:, None, :2] - dets[None, :, :2]

    def corners(cxcywh: np.ndarray) -> np.ndarray:
        return np.concatenate([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], axis=1)

    expected = iou(corners(tracks), corners(dets))
    assert ((expected > 0) & (expected < 1)).sum() > 50 and (expected == 0).sum() > 50  # both kinds are exercised
    np.testing.assert_allclose(_iou(tracks, dets, offset), expected, atol=1e-9)


def test_frames_that_plainly_continue_the_last_are_carried_with_the_ids_full_tracking_gives() -> None:
    """At 25 fps, four people apart, walking while the camera pans: tracked in full on every third frame and carried
    on the others, they get the ids, last boxes, times, frame counts and camera offsets that tracking in full on
    every frame gives; the motion state is that of a tracker that saw every third frame only, with the camera's
    motion in between summed."""
    full, carrying, sparse = ByteTracker(), ByteTracker(), ByteTracker()
    pan = np.array([0.03, 0.0], np.float32)  # frame heights per frame: the picture moves right
    summed = np.zeros(2, np.float32)
    for frame in range(21):
        t, x, y = frame / 25, 0.03 * frame * 9 / 16, 0.003 * frame
        boxes = np.array([_box(x + 0.05, 0.3 + y), _box(x + 0.2, 0.4 - y), _box(x + 0.35, 0.3 + y), _box(x + 0.5, 0.4)])
        scores = np.array([0.9, 0.8, 0.9, 0.3 if frame == 10 else 0.9])  # a low score: still carried
        camera = None if frame == 0 else pan
        expected = full.update(boxes, scores, t, camera=camera)
        ids = carrying.carry(boxes, scores, t, camera) if frame % 3 else None
        assert (ids is None) == (frame % 3 == 0), frame
        ids = carrying.update(boxes, scores, t, camera=camera) if ids is None else ids
        assert ids.tolist() == expected.tolist() == [1, 2, 3, 4], frame
        summed = summed + (0 if camera is None else camera)
        if frame % 3 == 0:
            sparse.update(boxes, scores, t, camera=None if frame == 0 else summed)
            summed = np.zeros(2, np.float32)
    for track_id, record in full.tracklets.items():
        other = carrying.tracklets[track_id]
        assert (other.last_t, other.frames) == (record.last_t, record.frames) == (20 / 25, 21)
        np.testing.assert_allclose(other.last_box, record.last_box)
        np.testing.assert_allclose(other.last_camera, record.last_camera, atol=1e-6)
        assert abs(other.last_camera[0] - 20 * 0.03) < 1e-5  # the pan of 20 frames, carried ones included
        np.testing.assert_allclose(other.velocity, sparse.tracklets[track_id].velocity, atol=1e-6)


def test_a_frame_is_tracked_in_full_when_it_does_not_plainly_continue_the_last() -> None:
    """Boxes that overlap each other, a tracked box missing, a new high-score box, an unknown camera motion or two
    boxes on one tracked box: the carry declines (the full association decides); a low-score box overlapping nobody
    is left out (-1)."""
    tracker = ByteTracker()
    two = np.array([_box(0.2, 0.3), _box(0.6, 0.3)])
    tracker.update(two, np.full(2, 0.9), 0.0, camera=np.zeros(2))
    still = np.zeros(2, np.float32)
    close = np.array([_box(0.2, 0.3), _box(0.25, 0.3)])  # the second person walked into the first
    assert tracker.carry(close, np.full(2, 0.9), 0.04, still) is None
    assert tracker.carry(two[:1], np.full(1, 0.9), 0.04, still) is None
    with_new = np.concatenate([two, [_box(0.85, 0.5)]])
    assert tracker.carry(with_new, np.full(3, 0.9), 0.04, still) is None
    assert tracker.carry(two, np.full(2, 0.9), 0.04, None) is None
    split = np.array([_box(0.2, 0.3), _box(0.21, 0.3)])  # two boxes on the first person, the second one gone
    assert tracker.carry(split, np.full(2, 0.9), 0.04, still) is None
    ids = tracker.carry(with_new, np.array([0.9, 0.9, 0.3]), 0.04, still)
    assert ids is not None and ids.tolist() == [1, 2, -1]
    nobody = ByteTracker()  # nobody tracked yet: a low-score box alone is left out too
    nobody.update(np.zeros((0, 4)), np.zeros(0), 0.0, camera=still)
    ids = nobody.carry(np.array([_box(0.5, 0.5)]), np.array([0.3]), 0.04, still)
    assert ids is not None and ids.tolist() == [-1]


def test_at_25_fps_a_person_appearing_between_full_associations_is_tracked_with_their_kit() -> None:
    """Every third frame is associated in full, the others carried; a newcomer on a carried frame makes it a full
    association, with the kit colours sampled for that frame alone (the newcomer's team vote starts there)."""
    rng = np.random.default_rng(4)
    picture = cv2.GaussianBlur(rng.integers(0, 255, (180, 320, 3), np.uint8), (0, 0), 2)
    tracks = VideoTracks(threshold=0.5, teams=2, aspect=320 / 180)
    two = [_box(0.1, 0.3), _box(0.5, 0.3)]
    frames: list[tuple[Detections, float, np.ndarray | None]] = []
    for frame in range(5):
        boxes = two + ([_box(0.8, 0.2)] if frame == 4 else [])  # the newcomer on frame 4: after 3, before 6
        people = Detections(
            np.array(boxes, np.float32), np.full(len(boxes), 0.9, np.float32), np.array(["person"] * len(boxes))
        )
        frames.append((people, frame / 25, picture))
    tracked = tracks.step_batch(frames)
    assert [d.track_ids.tolist() for d in tracked] == [[1, 2]] * 4 + [[1, 2, 3]]
    assert tracks.kits.vote([3]) is not None


def test_no_frame_gives_one_track_to_two_boxes() -> None:
    """Random frames at 25 fps, carried where they can be and associated in full where not: people jitter, vanish,
    appear, change score, get a second box; the camera's motion is sometimes unknown. Each id is used once per frame."""
    rng = np.random.default_rng(0)
    for _ in range(150):
        tracker, previous = ByteTracker(), np.zeros((0, 4), np.float32)
        for frame in range(30):
            if rng.random() < 0.6:  # the last frame's boxes moved a little, perhaps one fewer
                boxes = (previous + rng.normal(0, 0.005, previous.shape))[: len(previous) - (rng.random() < 0.2)]
                if len(boxes) >= 2 and rng.random() < 0.2:  # a second box on the first person, the last one gone
                    boxes = np.concatenate([boxes[:1] + 0.004, boxes[:-1]])
            else:
                corner = rng.uniform(0, 0.8, (int(rng.integers(0, 6)), 2))
                boxes = np.concatenate([corner, corner + rng.uniform(0.02, 0.3, corner.shape)], axis=1)
            previous = boxes.astype(np.float32)
            scores = rng.uniform(0.2, 1.0, len(previous))
            camera = None if rng.random() < 0.1 else rng.normal(0, 0.01, 2)
            ids = tracker.carry(previous, scores, frame / 25, camera) if frame % 3 else None
            ids = tracker.update(previous, scores, frame / 25, camera=camera) if ids is None else ids
            tracked = ids[ids >= 0].tolist()
            assert len(ids) == len(previous) and len(set(tracked)) == len(tracked)


def test_a_wrong_camera_measurement_does_not_lose_every_track() -> None:
    """A wrong peak of the picture's correlation says the picture jumped a quarter of its height while the people
    stood still: the tracks are not moved off their people (a true jump of the picture, with the people in it, is
    followed)."""
    tracker = ByteTracker()
    three = np.array([_box(0.1, 0.3), _box(0.4, 0.35), _box(0.7, 0.3)])
    assert tracker.update(three, np.full(3, 0.9), 0.0, camera=np.zeros(2)).tolist() == [1, 2, 3]
    wrong = np.array([0.0, 0.23], np.float32)
    assert tracker.update(three, np.full(3, 0.9), 0.04, camera=wrong).tolist() == [1, 2, 3]
    jumped = three + np.array([0.0, 0.23, 0.0, 0.23])
    assert tracker.update(jumped, np.full(3, 0.9), 0.08, camera=wrong).tolist() == [1, 2, 3]
    assert abs(tracker.tracklets[1].last_camera[1] - 0.23) < 1e-6  # the true jump counted, the wrong one not
