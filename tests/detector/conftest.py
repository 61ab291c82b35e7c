"""Generated clips with exact ground truth, made once per session; the models load once per process (cached)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from cli import detect_cmd
from detector.errors import DetectorError
from detector.sample import SampleSpec, write_sample

sys.path.insert(0, str(Path(__file__).parent))  # detector_metrics


@dataclass(frozen=True)
class Clip:
    video: Path
    truth: Path


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def sample_clip(clips: Path) -> Clip:
    """What `derby-batch sample` makes by default (1280x720, 4 people), 2 seconds."""
    video = clips / "sample.mp4"
    return Clip(video, write_sample(video, SampleSpec(seconds=2.0, seed=1)))


@pytest.fixture(scope="session")
def wide_clip(clips: Path) -> Clip:
    """A 1080p wide shot: 16 people each 8-12% of the frame height."""
    video = clips / "wide.mp4"
    return Clip(video, write_sample(video, SampleSpec.wide(seconds=1.0, seed=2)))


@pytest.fixture(scope="session")
def small_clip(clips: Path) -> Clip:
    """Small and short, for the tests about formats, sampling and errors."""
    video = clips / "small.mp4"
    return Clip(video, write_sample(video, SampleSpec(480, 270, seconds=1.0, people=2, seed=3)))


VFR_TIMES_MS = [0, 40, 80, 200, 240, 500, 533, 566, 1000, 1100]


@pytest.fixture(scope="session")
def vfr_clip(clips: Path) -> Path:
    """An H.264 clip whose frames are unevenly spaced (VFR_TIMES_MS)."""
    path = clips / "vfr.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        rng = np.random.default_rng(0)
        for ms in VFR_TIMES_MS:
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), format="rgb24")
            frame.pts, frame.time_base = ms, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    error: str  # the one line cli/app.py prints for a DetectorError, else ""


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., CliResult]:
    """The detect/sample/bench commands on a fresh Typer app, with cli/app.py's handling of DetectorError."""
    app = typer.Typer(pretty_exceptions_enable=False)
    detect_cmd.register(app)
    runner = CliRunner()

    def run(*args: str) -> CliResult:
        result = runner.invoke(app, [str(a) for a in args])
        if isinstance(result.exception, DetectorError):
            return CliResult(1, result.stdout, " ".join(str(result.exception).split()))
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return CliResult(result.exit_code, result.stdout, "")

    return run
