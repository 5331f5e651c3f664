"""``reviewkit`` command line: one sub-command per stage of the review.

Each command group lives in ``reviewkit/commands/<name>.py`` and exposes
``register(subparsers)``; it sets ``func`` on its parser, which returns an exit
code. User errors (``ReviewkitError``) print one clear line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import ReviewkitError

# Order is the order shown in --help.
COMMAND_MODULES = ["search", "screen", "audit", "run"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reviewkit",
        description="Systematic review of ketamine for addictive disorders, as code.",
    )
    parser.add_argument("--version", action="version", version=f"reviewkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"reviewkit.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ReviewkitError as exc:
        print(f"reviewkit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"reviewkit {args.command}: interrupted; what was recorded so far is kept.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
