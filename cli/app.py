"""The `derby-batch` entry point: one Typer app that gathers the command groups.

Each group lives in its own module and registers its commands on `app`; this file only wires them together and
turns the errors a user can act on into one line on stderr and exit code 1 (never a traceback).
"""

from __future__ import annotations

import sys
from functools import cache

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console

from batch_jobs.errors import PipelineError
from detector.errors import DetectorError

app = typer.Typer(
    name="derby-batch",
    help="Find people and faces in game footage, locally or on AWS Batch GPUs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


class UserError(Exception):
    """A problem the user can fix (bad option, missing stack): printed as one line, exit code 1."""


@cache
def _register() -> None:
    from cli import detect_cmd, local_cmd, pipeline_cmd

    for module in (detect_cmd, pipeline_cmd, local_cmd):
        module.register(app)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: list[str] | None = None) -> None:
    """Run one command (`argv`, default `sys.argv[1:]`) and exit with its status."""
    _register()
    try:
        app(args=argv)
    except (UserError, DetectorError, PipelineError, ClientError, BotoCoreError) as exc:
        err_console.print(f"[bold red]error:[/] {_one_line(exc)}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted", highlight=False)
        sys.exit(130)
