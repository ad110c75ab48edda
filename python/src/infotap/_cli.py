"""``infotap analyze|serve|report|compare [flags]``: the engine's commands, with the flags of the deno tasks."""

from __future__ import annotations

import os
import subprocess
import sys

from . import __version__
from ._bundle import PERMISSIONS, command, environment
from .errors import InfotapError

USAGE = f"""infotap {__version__}: where is the information in a neural network

Usage: infotap <command> [options]   (infotap <command> --help for its options)
  analyze   analyse wire-format v1 streams (.arrows, .arrow, '-' for stdin) into tables and run.json
  serve     live analysis: producers stream over TCP, results per window of steps
  report    one self-contained HTML page from a results directory
  compare   rank runs by mean entropy and MI beside your metrics (Kendall tau)
"""


def main(argv: list[str] | None = None) -> int:
    """Runs ``infotap <command> ...``; returns the engine's exit code (execs it on POSIX)."""
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        print(__version__)
        return 0
    if args[0] not in PERMISSIONS:
        print(
            f"infotap: Cannot run the command as it is not one of {', '.join(PERMISSIONS)}: current value is "
            f"{args[0]!r} (see infotap --help)",
            file=sys.stderr,
        )
        return 2
    try:
        cmd = command(args[0], args[1:])
    except InfotapError as e:
        print(f"infotap: error: {e}", file=sys.stderr)
        return 70
    if argv is None and os.name == "posix":
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(cmd[0], cmd, environment())  # Ctrl-C and SIGTERM reach the engine directly (serve's stop)
    return subprocess.call(cmd, env=environment())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
