"""The `derby-batch` entry point: one Typer app that gathers the command groups.

Each group lives in its own module and registers its commands on `app`; this file only wires them together and
turns the errors a user can act on into one line on stderr and exit code 1 (never a traceback). With `--json`, stdout
is one JSON document whatever happens: a failed command's is `{"error": "<the line>", ...}` (plus what the command
kept with `keep_for_error_json`), a bad option's too (exit code 2).
"""

from __future__ import annotations

import json
import sys
from functools import cache
from typing import Any

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
JSON_OPTION = "--json"
_error_fields: dict[str, Any] = {}


class UserError(Exception):
    """A problem the user can fix (bad option, missing stack): printed as one line, exit code 1."""


@cache
def _register() -> None:
    from cli import detect_cmd, local_cmd, pipeline_cmd

    for module in (detect_cmd, pipeline_cmd, local_cmd):
        module.register(app)


def keep_for_error_json(**fields: Any) -> None:
    """What a `--json` command has done so far, for its error document should it fail later (`submit`: the videos
    already submitted)."""
    _error_fields.update(fields)


def _one_line(exc: BaseException | str) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _fail(message: str, code: int, as_json: bool) -> None:
    """One line on stderr; with --json, the error document on stdout too."""
    if as_json:
        print(json.dumps({"error": message, **_error_fields}), flush=True)
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Run one command (`argv`, default `sys.argv[1:]`) and exit with its status."""
    _register()
    args = sys.argv[1:] if argv is None else list(argv)
    as_json = JSON_OPTION in args[: args.index("--")] if "--" in args else JSON_OPTION in args
    _error_fields.clear()
    try:
        if not as_json:
            app(args=args)
            return
        # Not standalone: a bad option raises here instead of printing its usage box, so it gets an error document.
        code = app(args=args, standalone_mode=False)
        if code == 130:  # typer turned a Ctrl-C in the command into this exit code
            raise KeyboardInterrupt
        sys.exit(code if isinstance(code, int) else 0)
    except (UserError, DetectorError, PipelineError, ClientError, BotoCoreError) as exc:
        _fail(_one_line(exc), 1, as_json)
    except typer.TyperException as exc:  # a bad option; only with --json: otherwise typer printed it and exited
        _fail(_one_line(exc.format_message()), exc.exit_code, as_json)
    except typer.Abort:  # only with --json: end of input at a prompt
        _fail("aborted", 1, as_json)
    except KeyboardInterrupt:
        if as_json:
            print(json.dumps({"error": "interrupted", **_error_fields}), flush=True)
        err_console.print("interrupted", highlight=False)
        sys.exit(130)
