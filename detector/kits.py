"""Teams and officials from kit colour: a torso colour sample per person box, voted per track, clustered per video.

No labelled data: a track's kit is the median of its samples (CIE Lab means of the torso region, and how striped it
is); tracks whose torsos are striped black and white are officials, and so are those of a third plain colour that
fewer people wear at once than any team's; the others are split into `teams` groups by k-means on their kit colour.
Limits (docs/detector.md): two teams in similar colours, a team in black and white, or heavy shadows confuse it; a
goalkeeper in a colour of his own may be taken for an official.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

TORSO = (0.3, 0.2, 0.7, 0.5)  # a standing player's chest in their box: x0, y0, x1, y1 as fractions
FACE_WIDTHS = 0.9  # below a face, the kit is sampled this many face widths either side of its centre...
FACE_HEIGHTS = 1.5  # ...down to this many face heights below its bottom
GRID = 8  # pixels sampled per region: GRID x GRID
# a kit with at least this share of both near-black and near-white pixels, alternating (STRIPE_CHANGES times or more)
# along most (STRIPED_LINES) of its sampled rows or columns, is an official's
OFFICIAL_STRIPES = 0.12
STRIPE_CHANGES = 2
STRIPED_LINES = 0.5
OFFICIAL = "official"
# A plain-coloured officials' group lies this far (Lab, lightness counting half) from every team's, and the teams
# this far from each other (two groups that close are one team split in two, not two teams)
OFFICIAL_APART = 40.0
TEAMS_APART = 20.0
SURE_SPAN_S = 1.0  # a track followed this long is a person (counting the people of a colour in view at once)
KIT_DIMENSIONS = 4  # L, a, b means and the stripe share
_TORSO = np.array(TORSO, np.float32)
_AT = (np.arange(GRID, dtype=np.float32) + 0.5) / GRID  # where the grid samples a region, as fractions
_LAB_WEIGHTS = np.array([0.5, 1.0, 1.0], np.float32)  # lightness counts half: shade varies


def team_name(index: int) -> str:
    """Team labels: A, B, ..., Z, then T27, T28..."""
    return chr(ord("A") + index) if index < 26 else f"T{index + 1}"


def torso_regions(people: np.ndarray, faces: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """(n, 4) normalized regions to sample each person's kit from: below their face when one was found in the box
    (`owner[j]` is the person row of face j, -1 none; works for a whole body and a bust alike), else the TORSO share
    of the box (a standing player's chest)."""
    size = people[:, 2:] - people[:, :2]
    regions = people[:, [0, 1, 0, 1]] + size[:, [0, 1, 0, 1]] * _TORSO
    held = owner >= 0
    if held.any():
        face, person = faces[held], people[owner[held]]
        fw, fh, cx = face[:, 2] - face[:, 0], face[:, 3] - face[:, 1], (face[:, 0] + face[:, 2]) / 2
        below = np.stack(
            [cx - FACE_WIDTHS * fw, face[:, 3] + 0.2 * fh, cx + FACE_WIDTHS * fw, face[:, 3] + FACE_HEIGHTS * fh],
            axis=1,
        )
        regions[owner[held]] = np.minimum(np.maximum(below, person[:, [0, 1, 0, 1]]), person[:, [2, 3, 2, 3]])
    return regions


def kit_samples(images: Sequence[np.ndarray], regions: Sequence[np.ndarray]) -> list[np.ndarray]:
    """For each RGB image, (n, KIT_DIMENSIONS) kit colours in its regions (normalized xyxy); NaN rows for tiny ones.
    A grid of GRID x GRID pixels per region; a batch of frames is converted to Lab and summarised in one go (this runs
    on every frame, and numpy's per-call cost, not the arithmetic, is most of it)."""
    if not regions:
        return []
    counts = [len(r) for r in regions]
    ends = list(itertools.accumulate(counts))
    out = np.full((ends[-1], KIT_DIMENSIONS), np.nan, np.float32)
    if not len(out):
        return _split(out, ends)
    sizes = np.repeat(np.array([image.shape[1::-1] for image in images], np.float32), counts, axis=0)  # width, height
    pixels = np.concatenate(regions) * np.tile(sizes, 2)
    usable = ((pixels[:, 2] - pixels[:, 0]) >= 3) & ((pixels[:, 3] - pixels[:, 1]) >= 3)
    if usable.any():
        px, limit = pixels[usable], sizes[usable].astype(int) - 1
        xs = np.minimum(np.maximum((px[:, 0:1] + (px[:, 2:3] - px[:, 0:1]) * _AT).astype(int), 0), limit[:, 0:1])
        ys = np.minimum(np.maximum((px[:, 1:2] + (px[:, 3:4] - px[:, 1:2]) * _AT).astype(int), 0), limit[:, 1:2])
        taken = np.concatenate([[0], np.cumsum(usable)])[ends].tolist()  # usable rows up to each image's end
        parts = zip(images, _split(xs, taken), _split(ys, taken), strict=True)
        rgb = np.concatenate([image[y[:, :, None], x[:, None, :]] for image, x, y in parts])
        out[usable] = _kit(rgb_to_lab(rgb.reshape(len(px), -1, 3)))
    return _split(out, ends)


def _split(rows: np.ndarray, ends: list[int]) -> list[np.ndarray]:
    """`rows` cut where each part ends (slices: `np.split` costs 10 times more, on every batch)."""
    return [rows[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]


def _kit(lab: np.ndarray) -> np.ndarray:
    """(k, KIT_DIMENSIONS) from (k, GRID * GRID, 3) Lab samples: the means, and the stripe share (0 unless striped)."""
    grey = np.hypot(lab[..., 1], lab[..., 2]) < 15
    dark, light = grey & (lab[..., 0] < 30), grey & (lab[..., 0] > 70)
    kit = np.empty((len(lab), KIT_DIMENSIONS), np.float32)
    kit[:, :3] = lab.sum(axis=1) / lab.shape[1]  # sums, not `mean`: the same figures without its Python wrapper
    both = np.minimum(dark.sum(axis=1), light.sum(axis=1)) / lab.shape[1]
    striped = np.zeros(len(lab), bool)
    candidate = both >= OFFICIAL_STRIPES
    if candidate.any():  # rows and columns (vertical stripes, hoops) in one call
        tone = (light[candidate].astype(np.int8) - dark[candidate]).reshape(-1, GRID, GRID)  # 1 light, -1 dark
        lines = _alternating(np.concatenate([tone, tone.transpose(0, 2, 1)]))
        striped[candidate] = np.maximum(lines[: len(tone)], lines[len(tone) :]) >= STRIPED_LINES
    kit[:, 3] = np.where(striped, both, 0.0)
    return kit


def _alternating(tone: np.ndarray) -> np.ndarray:
    """(k,) the share of each region's grid rows (k, rows, columns) that go light-dark-light or dark-light-dark or
    more: vertical stripes do in every row, a white shirt over dark shorts in none (and once per column), dark hair
    or a shirt number in a few. Samples neither dark nor light (a blurred edge) take the tone before them."""
    at = np.where(tone != 0, np.arange(tone.shape[2]), 0)
    filled = np.take_along_axis(tone, np.maximum.accumulate(at, axis=2), axis=2)
    changes = (filled[:, :, 1:] * filled[:, :, :-1] < 0).sum(axis=2)
    return (changes >= STRIPE_CHANGES).sum(axis=1) / tone.shape[1]


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIE Lab (D65; L 0..100) of uint8 sRGB pixels (..., 3), in numpy: OpenCV's float conversion builds tables on
    its first call (0.17 s here, 7% of a 120-frame bench run). `** (1/3)`, not `cbrt`: twice as fast on float32."""
    xyz = _LINEAR[rgb.reshape(-1, 3)] @ _RGB_TO_XYZ_WHITE  # one (n, 3) product: a stack of small ones costs 3x more
    f = np.where(xyz > 0.008856, xyz ** np.float32(1 / 3), 7.787 * xyz + 16.0 / 116.0)
    return (f @ _F_TO_LAB + _LAB_OFFSET).reshape(rgb.shape)  # L = 116 fy - 16, a = 500 (fx - fy), b = 200 (fy - fz)


_RGB_TO_XYZ = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]], np.float32
)
_RGB_TO_XYZ_WHITE = _RGB_TO_XYZ.T / np.array([0.950456, 1.0, 1.088754], np.float32)  # XYZ relative to D65 white
_F_TO_LAB = np.array([[0.0, 500.0, 0.0], [116.0, -500.0, 200.0], [0.0, 0.0, -200.0]], np.float32)
_LAB_OFFSET = np.array([-16.0, 0.0, 0.0], np.float32)
_SRGB = np.arange(256, dtype=np.float32) / 255.0
_LINEAR = np.where(_SRGB > 0.04045, ((_SRGB + 0.055) / 1.055) ** 2.4, _SRGB / 12.92)  # each uint8 value, linearised


def kit_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) distances between kits (Lab, lightness counting half: shade varies); inf between an
    official's kit and a player's; 0 where either is unknown (NaN)."""
    diff = (a[:, None, :3] - b[None, :, :3]) * _LAB_WEIGHTS
    distance = np.sqrt((diff * diff).sum(axis=2))  # `linalg.norm`'s figure at half its cost (every frame, twice)
    official = (a[:, None, 3] >= OFFICIAL_STRIPES) != (b[None, :, 3] >= OFFICIAL_STRIPES)
    return np.where(official, np.inf, np.fmax(distance, 0.0))  # fmax: 0 for NaN


def assign_teams(
    kits: dict[int, np.ndarray], teams: int, spans: Mapping[int, tuple[float, float]] | None = None
) -> dict[int, str]:
    """Each track's label from its voted kit (track id -> (KIT_DIMENSIONS,) array): OFFICIAL or a team name.
    `spans`, each track's first and last time, tells how many people of a colour are in view at once (without them,
    each track counts as one). Team A is the largest group; the result does not depend on the order of `kits`."""
    ids = sorted(kits)
    if not ids:
        return {}
    kit = np.array([kits[i] for i in ids], np.float32)
    official = kit[:, 3] >= OFFICIAL_STRIPES
    labels = {i: OFFICIAL for i, o in zip(ids, official, strict=True) if o}
    players = [i for i, o in zip(ids, official, strict=True) if not o]
    if not players:
        return labels
    colour = kit[~official, :3] * _LAB_WEIGHTS
    groups, plain = _teams_and_plain_officials(colour, teams, [spans[i] for i in players] if spans else None)
    labels.update({i: OFFICIAL for i, p in zip(players, plain, strict=True) if p})
    players = [i for i, p in zip(players, plain, strict=True) if not p]
    sizes = np.bincount(groups, minlength=groups.max() + 1)
    order = sorted(range(len(sizes)), key=lambda g: (-sizes[g], players[int(np.flatnonzero(groups == g)[0])]))
    rank = {g: n for n, g in enumerate(order)}
    labels.update({i: team_name(rank[int(g)]) for i, g in zip(players, groups, strict=True)})
    return labels


def _teams_and_plain_officials(
    colour: np.ndarray, teams: int, spans: Sequence[tuple[float, float]] | None
) -> tuple[np.ndarray, np.ndarray]:
    """The team group of each player kit that is not a plain-coloured official's, and which are. Clustered into
    `teams` + 1 groups, the smallest group is the officials' when fewer of its people are in view at once than of any
    other (a track split in two is still one person; without `spans`, tracks are counted), its colour lies
    OFFICIAL_APART from every other group's and those lie TEAMS_APART from each other; else there is none, and the
    kits form `teams` groups. (A goalkeeper in a colour of his own looks the same: see docs/detector.md.)"""
    none = np.zeros(len(colour), bool)
    if len(colour) < teams + 2:
        return _kmeans(colour, min(teams, len(colour))), none
    groups = _kmeans(colour, teams + 1)
    if spans is None:  # each track counts as one person
        sizes = np.bincount(groups, minlength=teams + 1)
    else:
        sizes = np.array(
            [_most_in_view([s for s, g in zip(spans, groups, strict=True) if g == k]) for k in range(teams + 1)]
        )
    smallest = int(np.argmin(sizes))
    if sizes[smallest] == 0 or np.sort(sizes)[1] <= sizes[smallest]:
        return _kmeans(colour, teams), none
    centres = np.array([colour[groups == g].mean(axis=0) for g in range(teams + 1)])
    apart = np.linalg.norm(centres[:, None] - centres[None], axis=2)
    others = np.delete(np.arange(teams + 1), smallest)
    between = apart[np.ix_(others, others)][np.triu_indices(teams, 1)]
    if apart[smallest, others].min() < OFFICIAL_APART or (len(between) and between.min() < TEAMS_APART):
        return _kmeans(colour, teams), none
    plain = groups == smallest
    rest = groups[~plain]
    return np.searchsorted(np.unique(rest), rest), plain


def _most_in_view(spans: Sequence[tuple[float, float]]) -> int:
    """How many people of a group are in view at once, at most: its tracks' (first, last) spans that overlap, of
    those followed for SURE_SPAN_S or more (a brief track is as often a stray box as a person)."""
    sure = [(first, last) for first, last in spans if last - first >= SURE_SPAN_S]
    events = sorted([(first, 1) for first, _ in sure] + [(last, -1) for _, last in sure], key=lambda e: (e[0], -e[1]))
    return max(itertools.accumulate(change for _, change in events), default=0)


def _kmeans(points: np.ndarray, k: int, rounds: int = 20) -> np.ndarray:
    """Cluster index of each point; deterministic: farthest-point start from the first point."""
    centres = [points[0]]
    for _ in range(1, k):
        distance = np.min([np.linalg.norm(points - c, axis=1) for c in centres], axis=0)
        centres.append(points[int(np.argmax(distance))])
    centre = np.array(centres)
    groups = np.zeros(len(points), int)
    for _ in range(rounds):
        groups = np.argmin(np.linalg.norm(points[:, None] - centre[None], axis=2), axis=1)
        moved = np.array([points[groups == g].mean(axis=0) if np.any(groups == g) else centre[g] for g in range(k)])
        if np.allclose(moved, centre):
            break
        centre = moved
    return groups
