"""The `cascade` console script and `python -m cascadeflow_cli`: a Ctrl-C while the
command's modules still load (typer, click, rich: 0.1 to 0.3 s on a loaded machine) came
out as a 20-line KeyboardInterrupt traceback and exit 1 or -2, before main() had set up
its handlers; here it is the one line and exit 130 (docs/errors.md) as at any later
phase. So is one while app.main builds the command tree, before its own try (`--help`:
~20 ms). Only the standard library is imported before the guard, and this module and the
package's __init__ import nothing else: the interpreter's own start (site) and the import
of these two files stay outside any guard of ours."""

import sys


def main() -> None:
    try:
        from cascadeflow_cli.cli.app import main as run

        run()
    except KeyboardInterrupt:
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not tear this line
        sys.stderr.write("error: interrupted\n")
        raise SystemExit(130) from None
