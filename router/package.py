"""Build the router Lambda zip: ``python -m router.package OUT.zip``.

The zip holds the modules of this checkout that the handler imports, found by following its imports (not the job, the
split or the benches: they never run in the Lambda), plus AWS Lambda Powertools and its two small runtime requirements,
copied from the installed site-packages. It never holds TensorFlow, the detector or boto3
(the Lambda runtime ships boto3). Entries are sorted and carry a fixed timestamp and mode, so the same sources always
give the same bytes: the deploy playbook compares the zip's hash and leaves the Lambda alone when nothing changed.

This module must not import the router or the job code: it only reads files.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.metadata
import sys
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
"""The checkout that holds ``router/`` and ``batch_jobs/``."""

SOURCE_PACKAGES = ("router", "batch_jobs")
"""Packages of this repository that the Lambda imports."""

DISTRIBUTIONS = ("aws-lambda-powertools", "jmespath", "typing-extensions")
"""Installed distributions copied into the zip (Powertools and its non-optional requirements)."""

FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
"""The earliest timestamp a zip entry can carry; used for every entry so the archive is reproducible."""

FILE_MODE = 0o644
SKIPPED_DIRS = frozenset({"__pycache__", "tests"})
SKIPPED_SUFFIXES = frozenset({".pyc", ".pyo"})


def _wanted(parts: tuple[str, ...]) -> bool:
    """Whether a file (given as path parts relative to its package root) belongs in the zip."""
    if any(part in SKIPPED_DIRS or part.startswith(".") for part in parts):
        return False
    return PurePosixPath(parts[-1]).suffix not in SKIPPED_SUFFIXES


HANDLER = "router.handler"
"""The Lambda's entry module: the zip holds it and what it imports from ``SOURCE_PACKAGES``."""

PACKAGE_DATA = {"batch_jobs": ("pipeline.json",)}
"""Data files the imported modules read."""


def _imports(path: Path, module: str) -> Iterator[str]:
    """Modules one file imports (absolute and relative, at any depth: a lazy import runs in the Lambda too)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`


def lambda_modules(root: Path = ROOT, entry: str = HANDLER) -> dict[str, Path]:
    """Every module of ``SOURCE_PACKAGES`` that ``entry`` needs, with its packages' ``__init__.py``: module -> file."""
    found: dict[str, Path] = {}
    todo = [entry]
    while todo:
        module = todo.pop()
        if module in found or module.split(".")[0] not in SOURCE_PACKAGES:
            continue
        base = root.joinpath(*module.split("."))
        path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        if not path.is_file():
            continue  # `from package import name` where name is not a module
        found[module] = path
        parents = module.split(".")[:-1]
        todo += [".".join(parents[: i + 1]) for i in range(len(parents))]
        todo += list(_imports(path, module))
    return found


def source_files(root: Path = ROOT) -> Iterator[tuple[str, Path]]:
    """Yield ``(archive name, file)`` for the modules the handler needs and their data files."""
    for package in SOURCE_PACKAGES:
        if not (root / package).is_dir():
            raise FileNotFoundError(f"package directory not found: {root / package}")
    for path in lambda_modules(root).values():
        yield path.relative_to(root).as_posix(), path
    for package, files in PACKAGE_DATA.items():
        for name in files:
            yield f"{package}/{name}", root / package / name


def distribution_files(names: Iterable[str] = DISTRIBUTIONS) -> Iterator[tuple[str, Path]]:
    """Yield ``(archive name, file)`` for the importable files of installed distributions (no metadata, no scripts)."""
    for name in names:
        distribution = importlib.metadata.distribution(name)
        for entry in distribution.files or ():
            parts = PurePosixPath(str(entry)).parts
            if not parts or parts[0] == ".." or parts[0].endswith((".dist-info", ".egg-info")):
                continue
            if not _wanted(parts):
                continue
            path = Path(str(distribution.locate_file(entry)))
            if path.is_file():
                yield PurePosixPath(*parts).as_posix(), path


def build(out: Path, root: Path = ROOT) -> str:
    """Write the zip to ``out`` and return its SHA-256 as hex; the same inputs always give the same bytes."""
    entries: dict[str, Path] = {}
    for name, path in (*source_files(root), *distribution_files()):
        entries.setdefault(name, path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o100000 | FILE_MODE) << 16
            info.create_system = 3  # unix, so the mode above is honoured on every platform
            archive.writestr(info, entries[name].read_bytes())
    tmp.replace(out)
    return hashlib.sha256(out.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m router.package", description="Build the router Lambda zip.")
    parser.add_argument("out", type=Path, help="path of the zip to write")
    args = parser.parse_args(argv)
    try:
        digest = build(args.out)
    except (OSError, importlib.metadata.PackageNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.out} sha256={digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
