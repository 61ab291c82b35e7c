"""Generated clips with exact ground truth, made once per session; the models load once per process (cached)."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from detector_clips import VFR_TIMES_MS, Clip, CliResult

from cli.app import main
from detector.sample import SampleSpec, write_sample


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
def crowd_clip(clips: Path) -> Clip:
    """A crowded 1080p wide shot: 40 people 6-12% of the frame height, in groups side by side across tile borders."""
    video = clips / "crowd.mp4"
    return Clip(video, write_sample(video, SampleSpec.crowded(seconds=1.0, seed=4)))


@pytest.fixture(scope="session")
def tight_crowd_clip(clips: Path) -> Clip:
    """The same, people shoulder to shoulder (0-2% of a width apart): where the model puts one box around several."""
    video = clips / "tight.mp4"
    return Clip(video, write_sample(video, SampleSpec.crowded(seconds=1.0, seed=5, gaps=(0.0, 0.02))))


@pytest.fixture(scope="session")
def small_clip(clips: Path) -> Clip:
    """Small and short, for the tests about formats, sampling and errors."""
    video = clips / "small.mp4"
    return Clip(video, write_sample(video, SampleSpec(480, 270, seconds=1.0, people=2, seed=3)))


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


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """`derby-batch ARGS...` in this process (the models stay loaded), through the real entry point."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main([str(a) for a in args])
        out, err = capsys.readouterr()
        code = exited.value.code
        return CliResult(code if isinstance(code, int) else (0 if code is None else 1), out, err.strip())

    return run


@pytest.fixture(scope="session")
def match_clip(clips: Path) -> Clip:
    """Two teams and a striped official crossing, hiding each other, one leaving and coming back: 1280x720, 10 fps,
    8 s."""
    from detector.sample_match import MatchSpec, write_match

    video = clips / "match.mp4"
    return Clip(video, write_match(video, MatchSpec(seconds=8.0, fps=10, seed=4)))
