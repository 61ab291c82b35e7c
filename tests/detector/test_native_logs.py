"""Native start-up chatter (written by C++ to file descriptor 2) is held back; everything else still gets through."""

from __future__ import annotations

import os

import pytest

from detector.native_logs import native_chatter_held

CHATTER = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    "I0000 00:00:1795881525.886629   31263 port.cc:153] oneDNN custom operations are on.\n",
    "E0000 00:00:1795881527.823306   31263 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n",
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n",
]
OTHER = "job local-abc-c00001-detect-a1 attempt 1: SUCCEEDED\n"


def _write_natively(lines: list[str]) -> None:
    for line in lines:
        os.write(2, line.encode())


def test_chatter_is_dropped_and_other_lines_pass(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    with native_chatter_held():
        _write_natively([*CHATTER[:2], OTHER, *CHATTER[2:]])
    assert capfd.readouterr().err == OTHER


def test_a_failing_block_passes_everything_on(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    with pytest.raises(RuntimeError), native_chatter_held():
        _write_natively(CHATTER)
        raise RuntimeError("the model did not load")
    assert capfd.readouterr().err == "".join(CHATTER)


def test_log_level_zero_holds_nothing_back(capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    with native_chatter_held():
        _write_natively(CHATTER)
    assert capfd.readouterr().err == "".join(CHATTER)
