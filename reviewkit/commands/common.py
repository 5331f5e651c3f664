"""Options and set-up shared by the commands: which data a command reads, and the ``Review`` it runs."""

from __future__ import annotations

import argparse

from ..project import Project
from ..review import Review


def add_data_options(p: argparse.ArgumentParser, *, screening: bool = True) -> None:
    """--offline/--live, --snapshot and (optionally) --screening: the data a command works on."""
    group = p.add_argument_group("data")
    mode = group.add_mutually_exclusive_group()
    mode.add_argument("--offline", dest="live", action="store_false",
                      help="replay a recorded snapshot (default)")
    mode.add_argument("--live", dest="live", action="store_true",
                      help="query NCBI and record every exchange (credentials from NCBI_EMAIL / NCBI_API_KEY)")
    p.set_defaults(live=False)
    group.add_argument("--snapshot", metavar="NAME|DIR", default=None,
                       help="snapshot: a folder name under the project's snapshots folder, or a path "
                            "(default: the project's snapshot for the mode, see reviewkit.yml)")
    if screening:
        group.add_argument("--screening", metavar="NAME|DIR", default=None,
                           help="screening folder: a name under the project's screening folder, or a path "
                                "(default: the one named after the snapshot)")


def add_model_options(p: argparse.ArgumentParser) -> None:
    """--method and --hksj: how syntheses pool (default: the protocol's analysis section)."""
    p.add_argument("--method", default=None, metavar="METHOD",
                   help="tau^2 estimator: REML, DL, PM, ML, HE, SJ or FE (default: the protocol's)")
    p.add_argument("--hksj", action=argparse.BooleanOptionalAction, default=None,
                   help="Hartung-Knapp-Sidik-Jonkman CIs, or --no-hksj for none (default: the protocol's)")


def open_project(args: argparse.Namespace) -> Project:
    return Project.find(args.project, protocol=args.protocol)


def open_review(args: argparse.Namespace, *, progress: bool = True, **kwargs) -> Review:
    """The ``Review`` the command's options describe."""
    return Review(open_project(args), live=args.live, snapshot=args.snapshot,
                  screening=getattr(args, "screening", None), progress=progress, **kwargs)


def sample_notice(review: Review) -> str | None:
    """The line every output made from a sample starts with, or None."""
    return f"NOTE: {review.sample_note}" if review.is_sample else None
