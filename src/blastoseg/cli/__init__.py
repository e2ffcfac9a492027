"""The `blastoseg` command line: one module per command, each with `add_parser` and `run`.

Heavy modules (torch, skimage, the synth and metrics code) are imported inside the
commands' `run`, so that `blastoseg --help` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS = ("synth", "evaluate", "segment", "train", "measure", "tune", "info", "demo")


def build_parser() -> argparse.ArgumentParser:
    from blastoseg import __version__

    parser = argparse.ArgumentParser(prog="blastoseg", description="Amodal instance segmentation of embryo blastomeres.")
    parser.add_argument("--version", action="version", version=f"blastoseg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"blastoseg.cli.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code: 2 for bad input, 1 when the disk or memory runs out,
    each with a one-line message."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    from blastoseg.cli.common import INPUT_ERRORS, error_message, notices_as_lines

    try:
        with notices_as_lines():
            return int(args.func(args))
    except (ValueError, OSError, MemoryError) as exc:  # what the user can fix: the input, the disk, the memory
        print(f"blastoseg {args.command}: error: {error_message(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, INPUT_ERRORS) else 1
    except KeyboardInterrupt:
        print("blastoseg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
