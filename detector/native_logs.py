"""Keeping native libraries' start-up chatter off the terminal.

TensorFlow 2.21 prints oneDNN, CUDA-stub and cuInit lines to stderr at import and first device query whatever
TF_CPP_MIN_LOG_LEVEL says (tensorflow#100442), and LiteRT announces its XNNPACK delegate. Those lines are written by
C++ straight to file descriptor 2, so they can only be held back there.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

# absl's "I0000 00:00:1795881466.478062   30891 file.cc:52] ..." lines, its notice about them, LiteRT's delegate line
_CHATTER = re.compile(
    r"^([IWEF]\d{4} [\d:.]+ +\d+ \S+:\d+\]"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|INFO: Created TensorFlow Lite)"
)


@contextlib.contextmanager
def native_chatter_held() -> Iterator[None]:
    """Run the block with stderr going to a file; afterwards pass on every line that is not start-up chatter (other
    threads may have written meanwhile), or every line if the block failed, so nothing needed for a diagnosis is lost.
    With TF_CPP_MIN_LOG_LEVEL=0, the user asked for everything: nothing is held back."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        yield
        return
    sys.stderr.flush()
    try:
        terminal = os.dup(2)
    except OSError:  # no stderr at all: nothing to keep clean
        yield
        return
    failed = False
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(terminal, 2)
            os.close(terminal)
            held.seek(0)
            lines = held.read().decode(errors="replace").splitlines(keepends=True)
            kept = lines if failed else [line for line in lines if not _CHATTER.match(line)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
