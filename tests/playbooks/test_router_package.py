"""router/package.py builds a small, reproducible Lambda zip (no moto needed)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

from playbook_harness import REPO

from router.package import build


def names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def test_zip_is_byte_for_byte_reproducible(tmp_path: Path) -> None:
    first = build(tmp_path / "a.zip")
    second = build(tmp_path / "b.zip")
    assert first == second
    assert first == hashlib.sha256((tmp_path / "a.zip").read_bytes()).hexdigest()


def test_zip_has_the_router_the_job_contract_and_powertools_but_no_heavy_packages(tmp_path: Path) -> None:
    build(tmp_path / "router.zip")
    entries = names(tmp_path / "router.zip")
    assert entries == sorted(entries)
    tops = {name.split("/", 1)[0] for name in entries}
    assert {"router", "batch_jobs", "aws_lambda_powertools"} <= tops
    assert "batch_jobs/pipeline.json" in entries
    assert tops.isdisjoint({"tensorflow", "detector", "boto3", "botocore", "numpy", "cv2", "cli", "tests"})
    assert not [n for n in entries if "__pycache__" in n or n.endswith(".pyc")]
    # Only what the handler runs: not the job, the split, the merge or the zip builder itself.
    for absent in ("batch_jobs/job.py", "batch_jobs/split.py", "batch_jobs/merge.py", "router/package.py"):
        assert absent not in entries
    with zipfile.ZipFile(tmp_path / "router.zip") as archive:
        infos = archive.infolist()
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert (tmp_path / "router.zip").stat().st_size < 10 * 1024 * 1024


def test_command_line_writes_the_zip(tmp_path: Path) -> None:
    out = tmp_path / "out" / "router.zip"
    completed = subprocess.run(
        [sys.executable, "-m", "router.package", str(out)], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert out.is_file()
    assert "sha256=" in completed.stdout


def test_command_line_fails_in_one_line_on_a_bad_output(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    completed = subprocess.run(
        [sys.executable, "-m", "router.package", str(blocker / "router.zip")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 1
    assert completed.stderr.startswith("error: ")
    assert len(completed.stderr.strip().splitlines()) == 1


def test_playbook_modules_render_their_documentation() -> None:
    modules = sorted(p.stem for p in (REPO / "playbooks" / "library").glob("derby_*.py"))
    assert len(modules) >= 6
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-doc"), "-M", "library", *modules],
        cwd=REPO / "playbooks",
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    for name in modules:
        assert name.upper() in completed.stdout or name in completed.stdout
    assert "RETURN VALUES" in completed.stdout


def test_the_handler_imports_from_the_zip_alone(tmp_path: Path) -> None:
    """Unpacked, with the checkout out of reach and the heavy packages blocked, the handler still imports."""
    build(tmp_path / "router.zip")
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(tmp_path / "router.zip") as archive:
        archive.extractall(unpacked)
    blocked = ("av", "numpy", "cv2", "tensorflow", "detector", "cli", "matplotlib")
    code = (
        "import sys\n"
        f"sys.path = [{str(unpacked)!r}] + [p for p in sys.path if 'packages' in p or p.startswith(sys.base_prefix)]\n"
        f"sys.modules.update(dict.fromkeys({blocked!r}))\n"
        "import router.handler, router.sweep\n"
        "print(router.handler.__file__)\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip().startswith(str(unpacked))
