"""The output schema `derby-batch/detections@2`, written incrementally and atomically.

@2 is @1 plus, for tracked videos, `track` and `team` on boxes and a `tracks` table; readers take both.

Frames stream to a spool file beside the output while the video is analyzed (memory stays flat on long videos); the
final document is assembled into a temporary file and moved into place with `os.replace`, so a reader never sees a
partial file and an error leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from detector.detections import Detections, FrameDetections
from detector.errors import DetectorError

SCHEMA = "derby-batch/detections@2"
READABLE = ("derby-batch/detections@1", SCHEMA)  # @1 documents are @2 documents without tracks


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # mkstemp makes 0600 files; outputs get the usual permissions


class AtomicFile:
    """A temporary file next to `path`: `commit` moves it onto `path` (atomic on one file system), `discard` removes
    it. As a context manager it commits when the block succeeds and discards when it fails."""

    def __init__(self, path: Path, suffix: str = "") -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
        except OSError as exc:
            raise DetectorError(f"cannot write {path}: {exc.strerror or exc}") from exc
        os.close(fd)
        os.chmod(name, _FILE_MODE)
        self.tmp = Path(name)

    def commit(self) -> None:
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def frame_json(frame: FrameDetections) -> dict[str, Any]:
    item: dict[str, Any] = {"index": frame.index, "t": round(frame.t, 6)}
    if frame.source is not None:
        item["source"] = frame.source
    item["detections"] = frame.detections.to_json()
    return item


class DetectionsWriter:
    """Use as a context manager: `add` each analyzed frame, then `finish` with the header and stats."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = AtomicFile(path, ".json")
        self._spool = tempfile.TemporaryFile("w+", encoding="utf-8", dir=path.parent)  # noqa: SIM115 closed in __exit__
        self._finished = False

    def __enter__(self) -> DetectionsWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._spool.close()
        if not self._finished:
            self._file.discard()

    def add(self, frame: FrameDetections) -> None:
        self.add_json(frame_json(frame))

    def add_json(self, frame: dict[str, Any]) -> None:
        """A frame already in the schema's form (what ground truth with extra fields per box writes)."""
        self._spool.write(json.dumps(frame, separators=(",", ":")) + "\n")

    def finish(
        self,
        header: dict[str, Any],
        stats: dict[str, Any],
        tracks: list[dict[str, Any]] | None = None,
        relabel: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
    ) -> None:
        """Write `{"schema", **header, "frames": [...], "tracks": [...], "stats"}` and move it into place; `relabel`
        rewrites each frame's detections on the way (track ids become known only once the video is)."""
        self._spool.seek(0)
        with self._file.tmp.open("w", encoding="utf-8") as out:
            head = json.dumps({"schema": SCHEMA, **header}, separators=(",", ":"))
            out.write(head[:-1] + ',"frames":[')
            for i, line in enumerate(self._spool):
                if relabel is not None:
                    frame = json.loads(line)
                    line = json.dumps({**frame, "detections": relabel(frame["detections"])}, separators=(",", ":"))
                out.write(("," if i else "") + line.rstrip("\n"))
            if tracks is not None:
                out.write('],"tracks":' + json.dumps(tracks, separators=(",", ":")))
            else:
                out.write("]")
            out.write(',"stats":' + json.dumps(stats, separators=(",", ":")) + "}\n")
        self._file.commit()
        self._finished = True


def read_detections(path: Path) -> dict[str, Any]:
    """Load and check a detections document."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DetectorError(f"cannot read detections {path}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("schema") not in READABLE:
        raise DetectorError(f"{path} is not a {' or '.join(READABLE)} document")
    return doc


def frames_of(doc: dict[str, Any]) -> list[FrameDetections]:
    return [
        FrameDetections(f["index"], f["t"], Detections.from_json(f["detections"]), f.get("source"))
        for f in doc["frames"]
    ]
