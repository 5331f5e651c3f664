"""``reviewkit init``: create a review project folder, empty or from a worked example."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from ..scaffold import EXAMPLES

    p = sub.add_parser("init", parents=[common], help="create a review project (empty, or a worked example)",
                       description="Create a review project in DIR: reviewkit.yml, a protocol to fill in, empty "
                                   "extraction tables, the report notebooks and a README. With --example, a copy "
                                   "of a worked example that `reviewkit run --offline` runs as it is.")
    p.add_argument("folder", metavar="DIR", help="the new project's folder (must not exist, or be empty)")
    p.add_argument("--example", choices=sorted(EXAMPLES), default=None,
                   help="copy a worked example: " + "; ".join(f"{k}: {v}" for k, v in EXAMPLES.items()))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ReviewkitError
    from ..scaffold import init_project

    if args.project:
        raise ReviewkitError("--project names an existing project; init creates the project DIR")
    project = init_project(args.folder, example=args.example, protocol=args.protocol)
    print(f"created the review project {project.root}")
    if args.example:
        print(f"next: cd {project.root} && reviewkit run --offline")
    else:
        print(f"next: edit {project.relative(project.protocol_path)} (replace every <placeholder>), then "
              f"`reviewkit search --live` from {project.root}")
    return 0
