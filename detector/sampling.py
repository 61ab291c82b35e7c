"""Which frames to analyze: every Nth frame, or about F per second by presentation time (right for variable rate)."""

from __future__ import annotations

from dataclasses import dataclass, field

from detector.errors import DetectorError


@dataclass
class Sampler:
    """Decides per decoded frame, before it is converted, so skipped frames cost only their decode."""

    every: int = 1
    fps: float | None = None
    _next_t: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.every < 1:
            raise DetectorError(f"--every must be at least 1, got {self.every}")
        if self.fps is not None and self.fps <= 0:
            raise DetectorError(f"--fps must be positive, got {self.fps}")
        if self.fps is not None and self.every != 1:
            raise DetectorError("use either --every or --fps, not both")

    def reset(self) -> None:
        """Start over for the next input."""
        self._next_t = None

    def wants(self, index: int, t: float) -> bool:
        if self.fps is None:
            return index % self.every == 0
        period = 1.0 / self.fps
        if self._next_t is None:
            self._next_t = t
        if t + 1e-6 < self._next_t:
            return False
        while self._next_t <= t + 1e-6:
            self._next_t += period
        return True

    def expected(self, frames: int | None, duration_s: float | None) -> int | None:
        """About how many frames of a video will be analyzed (for the progress bar)."""
        if self.fps is not None and duration_s:
            return max(1, round(duration_s * self.fps))
        if frames:
            return -(-frames // self.every)
        return None
