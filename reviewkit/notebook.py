"""What every review notebook does first, and the few helpers the notebooks share.

``start(...)`` turns a notebook's papermill parameters into resolved paths, so
the same notebook runs from the repository root, from ``notebooks/`` in
JupyterLab and under ``reviewkit run``. It switches itables to offline mode (its
JavaScript is inlined into the output, so the HTML report fetches nothing from
the internet) and shows the banner every output built from the bundled sample
carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .errors import ReviewkitError
from .report import project_root, sample_banner_html


@dataclass(frozen=True)
class Context:
    root: Path
    snapshot_dir: Path
    output_dir: Path
    offline: bool
    searches: list[str] | None

    @property
    def exports(self) -> Path:
        return self.output_dir / "exports"

    @property
    def snapshot_info(self) -> dict:
        from .snapshot import Snapshot

        if not (self.snapshot_dir / "snapshot.json").is_file():
            return {}
        return Snapshot.open(self.snapshot_dir).info

    @property
    def is_sample(self) -> bool:
        return bool(self.snapshot_info.get("sample"))


def resolve_snapshot(snapshot: str, root: Path) -> Path:
    """A bare name is a folder of ``data/snapshots/``; anything else is a path (relative to the project)."""
    if not snapshot:
        raise ReviewkitError("parameter 'snapshot' is empty; give a snapshot name (e.g. sample) or a folder")
    path = Path(snapshot).expanduser()
    if len(path.parts) == 1 and not path.is_absolute():
        return root / "data" / "snapshots" / snapshot
    return path if path.is_absolute() else root / path


def start(*, offline: bool = True, snapshot: str = "sample", searches: list[str] | None = None,
          output_dir: str = "") -> Context:
    """Resolve paths, set up interactive tables, show the sample banner; the first call of every notebook."""
    import itables
    from IPython.display import HTML, display

    root = project_root()
    out = Path(output_dir).expanduser() if output_dir else root / "reports" / "interactive"
    ctx = Context(root, resolve_snapshot(str(snapshot), root), out if out.is_absolute() else root / out,
                  bool(offline), list(searches) if searches else None)
    if ctx.offline and not (ctx.snapshot_dir / "snapshot.json").is_file():
        raise ReviewkitError(f"offline run: snapshot folder {ctx.snapshot_dir} does not exist or has no snapshot.json")
    if not ctx.offline and ctx.is_sample:
        raise ReviewkitError(f"live run: {ctx.snapshot_dir} is the bundled sample; give a new snapshot folder "
                             "for the live searches to be recorded in")
    itables.init_notebook_mode(all_interactive=False, connected=False)
    if ctx.is_sample:
        display(HTML(sample_banner_html(ctx.snapshot_info.get("note", ""))))
    return ctx


def open_transport(ctx: Context, protocol):
    """Replay the snapshot offline; live, record every request into it (resuming what is there)."""
    from .entrez import LiveTransport, ReplayTransport
    from .snapshot import Snapshot

    if ctx.offline:
        return ReplayTransport(Snapshot.open(ctx.snapshot_dir))
    snap = Snapshot.create(ctx.snapshot_dir, sample=False, note="Live PubMed searches recorded by reviewkit.",
                           protocol_sha256=protocol.sha256)
    return LiveTransport(snap)


def search_table(results) -> pd.DataFrame:
    """One row per search: what PRISMA-S asks a report to state."""
    return pd.DataFrame([
        {
            "search": r.key,
            "label": r.manifest.get("label"),
            "date run": r.manifest.get("date_run"),
            "PubMed count": r.count,
            "records retrieved": r.retrieved,
            "date limits": f"{r.manifest.get('datetype')}: {r.manifest.get('mindate')} to {r.manifest.get('maxdate')}",
            "query": r.query,
        }
        for r in results
    ])
