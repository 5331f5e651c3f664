"""``reviewkit`` command line: one sub-command per stage of a review.

Each command group lives in ``reviewkit/commands/<name>.py`` and exposes
``register(subparsers, common)``; it sets ``func`` on its parser, which returns an
exit code. Command modules import only what building the parser needs, and the
stages inside their functions, so ``reviewkit --help`` starts at once. User errors
(``ReviewkitError``) print one clear line and exit 2. Everything printed to stderr,
log lines and error messages alike, and even the traceback of a bug, is redacted
(``reviewkit.redact``): credentials never reach a terminal or a cron mail.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from contextlib import redirect_stderr, redirect_stdout

from . import __version__
from .errors import ReviewkitError
from .redact import RedactingFormatter, redact

# Order is the order shown in --help.
COMMAND_MODULES = ["init", "search", "screen", "synthesis", "audit", "run"]


def common_options() -> argparse.ArgumentParser:
    """Options every command takes: which project, which protocol, how talkative."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("project")
    group.add_argument("--project", metavar="DIR", default=None,
                       help="the review's folder (default: $REVIEWKIT_PROJECT, else the folder holding "
                            "reviewkit.yml, from here upwards)")
    group.add_argument("--protocol", metavar="FILE", default=None,
                       help="protocol file to use instead of the project's")
    talk = common.add_argument_group("output")
    talk.add_argument("-v", "--verbose", action="count", default=0, help="say more (each request with -vv)")
    talk.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reviewkit",
        description="Systematic reviews as code: searches with replayable snapshots, screening, PRISMA 2020, "
                    "meta-analysis and a claims audit, run from a review's project folder.",
    )
    parser.add_argument("--version", action="version", version=f"reviewkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    common = common_options()
    for name in COMMAND_MODULES:
        importlib.import_module(f"reviewkit.commands.{name}").register(sub, common)
    return parser


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a message comes (tests and notebooks swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure_logging(verbose: int, quiet: bool) -> None:
    """Messages of the ``reviewkit`` logger to stderr: retries, waits and what a long step is doing."""
    logger = logging.getLogger("reviewkit")
    logger.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(RedactingFormatter("reviewkit: %(message)s"))
        logger.addHandler(handler)


class _Redacted:
    """A text stream that redacts what is written to it (a command's stdout and stderr: cron mails
    them and logs keep them); everything else is the wrapped stream's."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(redact(text))

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    with redirect_stdout(_Redacted(sys.stdout)), redirect_stderr(_Redacted(sys.stderr)):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args) or 0)
    except ReviewkitError as exc:
        print(redact(f"reviewkit {args.command}: error: {exc}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"reviewkit {args.command}: interrupted; what was recorded so far is kept.", file=sys.stderr)
        return 130
    except Exception:  # a bug: its traceback may quote input, so it is redacted like everything else
        print(redact(traceback.format_exc()), file=sys.stderr, end="")
        print(f"reviewkit {args.command}: internal error (a bug in reviewkit, not in your input); "
              "please report it with the lines above", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
