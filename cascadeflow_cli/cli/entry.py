"""The `cascade` console script and `python -m cascadeflow_cli`: a Ctrl-C while the
command's modules still load (typer, click, rich: 0.1 to 0.3 s on a loaded machine) came
out as a 20-line KeyboardInterrupt traceback and exit 1 or -2, before main() had set up
its handlers; here it is the one line and exit 130 (docs/errors.md) as at any later
phase. Only the standard library is imported before the guard."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from cascadeflow_cli.cli.app import main as run
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        raise SystemExit(130) from None
    run()
