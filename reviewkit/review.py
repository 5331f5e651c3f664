"""One orchestration for the command line and the notebooks: a review's stages, each computed once.

``Review`` binds a project to the data of one run (a snapshot, its screening
folder, live or offline) and computes each stage on first use: searches,
records, the screening state, PRISMA counts, the extraction, the pooled
analyses and the claims audit. ``reviewkit search|screen|prisma|audit|run`` and
every notebook call these same methods, so they cannot drift apart.

The screening state (records parsed, deduplicated, decisions carried onto
fresh sheets) is the costly part: ``reviewkit run`` builds it once and hands it
to every notebook it runs (``reviewkit.screening_state.handoff``).
"""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ReviewkitError
from .project import Project

if TYPE_CHECKING:
    import pandas as pd

    from .audit import ArticleAudit
    from .entrez import Credentials, SearchResult
    from .meta import SubgroupAnalysis
    from .prisma import PrismaReport
    from .screening_state import ScreeningState
    from .snapshot import Snapshot

log = logging.getLogger(__name__)

LIVE_NOTE = "PubMed searches run live by reviewkit."
EXTRACTION_FILE = "outcomes.csv"
STUDIES_FILE = "studies.csv"


class Review:
    """The stages of one review run, computed on first use and kept.

    Parameters
    ----------
    project : Project
        The review's folder (``Project.find``).
    live : bool
        Run the searches against PubMed and record them in the snapshot; otherwise replay it.
    snapshot, screening : str or Path, optional
        A folder name under the project's snapshots (screening) folder, or a path. Default: the
        project's snapshot for the mode, and ``<screening>/<snapshot name>``.
    searches : list of str, optional
        Run and show only these protocol searches (all when empty).
    output_dir : Path, optional
        Where exports go (default: the project's ``reports/interactive``).
    credentials : reviewkit.entrez.Credentials, optional
        For live searches; default from ``NCBI_EMAIL`` / ``NCBI_API_KEY``.
    progress : bool
        Show progress bars for long steps.
    """

    def __init__(self, project: Project, *, live: bool = False, snapshot: str | Path | None = None,
                 screening: str | Path | None = None, searches: list[str] | tuple[str, ...] | None = None,
                 output_dir: str | Path | None = None, credentials: Credentials | None = None,
                 progress: bool = False):
        self.project = project
        self.live = bool(live)
        self.protocol = project.protocol()
        self.searches = [self.protocol.search(k).key for k in searches] if searches else []
        self.snapshot_dir = project.snapshot_dir(snapshot, live=self.live)
        self.screening_dir = project.screening_dir(self.snapshot_dir, screening)
        self.output_dir = Path(output_dir).expanduser().resolve() if output_dir else \
            project.path("reports") / "interactive"
        self.credentials = credentials
        self.progress = progress
        self._searched: list[SearchResult] | None = None

    def __repr__(self) -> str:
        return (f"Review({self.project.root.name!r}, {'live' if self.live else 'offline'}, "
                f"snapshot={self.project.relative(self.snapshot_dir)!r})")

    @property
    def exports(self) -> Path:
        return self.output_dir / "exports"

    # -- searches ---------------------------------------------------------------
    @cached_property
    def snapshot(self) -> Snapshot:
        from .snapshot import Snapshot

        if self.live:
            snap = Snapshot.create(self.snapshot_dir, sample=False, note=LIVE_NOTE,
                                   protocol_sha256=self.protocol.sha256)
            if not snap.writable:
                raise ReviewkitError(f"live: snapshot {self.project.relative(self.snapshot_dir)} is a sample and "
                                     "read-only; record live searches in a snapshot of their own (e.g. --snapshot live)")
            return snap
        if not (self.snapshot_dir / "snapshot.json").is_file():
            raise ReviewkitError(f"offline: snapshot {self.project.relative(self.snapshot_dir)} does not exist "
                                 "(no snapshot.json); run the searches live first (`reviewkit search --live`) "
                                 "or name another snapshot")
        return Snapshot.open(self.snapshot_dir)

    @property
    def is_sample(self) -> bool:
        return self.snapshot.is_sample

    @property
    def sample_note(self) -> str:
        """The sample's own words about what it is; "" for a snapshot of real searches."""
        return str(self.snapshot.info.get("note", "")) if self.is_sample else ""

    def transport(self):
        """Live: requests go to PubMed and are recorded; offline: answered from the snapshot."""
        from .entrez import Credentials, LiveTransport, ReplayTransport

        if self.live:
            return LiveTransport(self.snapshot, self.credentials or Credentials.from_env())
        return ReplayTransport(self.snapshot)

    def search(self) -> list[SearchResult]:
        """Run (live) or replay (offline) the chosen searches, once; live runs record every exchange."""
        from .entrez import run_searches

        if self._searched is None:
            log.info("%s searches: %s", "running" if self.live else "replaying",
                     ", ".join(self.searches or self.protocol.searches))
            self._searched = run_searches(self.transport(), self.protocol, self.searches or None,
                                          progress=self.progress)
        return self._searched

    def records(self) -> pd.DataFrame:
        """The PubMed records of the chosen searches, one row per PMID."""
        from .records import load_records

        return load_records(self.snapshot, self.searches or None)

    def other_records(self) -> pd.DataFrame:
        """Records identified by other methods (the snapshot's ``other_methods/``)."""
        from .other_methods import read_other_methods_folder

        return read_other_methods_folder(self.snapshot.folder("other_methods"),
                                         known_searches=set(self.protocol.searches))

    # -- screening --------------------------------------------------------------
    @cached_property
    def state(self) -> ScreeningState:
        """Records deduplicated and the screening decisions carried onto fresh sheets."""
        from .screening_state import build_state, handed_state

        handed = handed_state(self.snapshot_dir, self.screening_dir, self.protocol)
        if handed is not None:
            log.debug("screening state handed over by reviewkit run")
            return handed
        log.info("building the screening state: %s, decisions in %s", self.project.relative(self.snapshot_dir),
                 self.project.relative(self.screening_dir))
        return build_state(self.snapshot, self.screening_dir, self.protocol, progress=self.progress)

    def save_screening(self, folder: str | Path | None = None) -> list[Path]:
        """Write the sheets and deduplication logs (to the screening folder, or ``folder``)."""
        from .screening_state import write_state

        return write_state(self.state, Path(folder) if folder else self.screening_dir)

    @cached_property
    def prisma(self) -> PrismaReport:
        from .prisma import prisma_report

        return prisma_report(self.state)

    # -- synthesis --------------------------------------------------------------
    @property
    def extraction_file(self) -> Path:
        return self.project.path("extraction") / EXTRACTION_FILE

    @property
    def studies_file(self) -> Path:
        return self.project.path("extraction") / STUDIES_FILE

    @cached_property
    def extraction(self) -> pd.DataFrame:
        from .extraction import load_extraction

        return load_extraction(self.extraction_file, self.protocol)

    @cached_property
    def included(self) -> pd.DataFrame:
        """The reports included at full text, with their study's design and extraction rows."""
        from .evidence import included_from_screening, load_studies

        return included_from_screening(self.state, load_studies(self.studies_file), self.extraction)

    def analysis(self, name: str | None = None, method: str | None = None,
                 hksj: bool | None = None) -> SubgroupAnalysis | None:
        """The pre-specified analysis ``name`` (default: the protocol's) of the included studies, by search;
        None when there is nothing to pool: no analysis named, nothing extracted yet, or no included
        study with a row in it."""
        from .evidence import pool_analysis

        name = self.analysis_name(name)
        if name is None or self.extraction.empty:
            return None
        return pool_analysis(self.extraction, name, self.method(method), self.hksj(hksj),
                             included=self.included, disorders=tuple(self.protocol.searches))

    def analysis_name(self, name: str | None = None) -> str | None:
        """The analysis named, else the protocol's ``analysis.default`` (None when it sets none)."""
        return name or self.protocol.analysis.default

    def method(self, method: str | None = None) -> str:
        return method or self.protocol.analysis.method

    def hksj(self, hksj: bool | None = None) -> bool:
        return self.protocol.analysis.hksj if hksj is None else bool(hksj)

    # -- audit ------------------------------------------------------------------
    @property
    def article_dir(self) -> Path:
        return self.project.path("article")

    @property
    def has_article(self) -> bool:
        """Whether the project holds an article to audit (``claims.yml`` and ``references.txt``)."""
        return (self.article_dir / "claims.yml").is_file() and (self.article_dir / "references.txt").is_file()

    def citation_source(self):
        """Where references are checked: PubMed live (recorded in the snapshot), else its local records."""
        from .citations import candidate_source

        return candidate_source(self.snapshot, live=self.live)

    def audit(self, analysis: str | None = None, method: str | None = None,
              hksj: bool | None = None) -> ArticleAudit:
        """The article's references checked and its claims weighed against this review's evidence."""
        from .audit import audit_article

        if not self.has_article:
            raise ReviewkitError(f"this project has no article to audit: {self.project.relative(self.article_dir)} "
                                 "needs claims.yml and references.txt")
        return audit_article(self.article_dir, self.protocol, self.citation_source(), self.included,
                             self.extraction, analysis=self.analysis_name(analysis), method=self.method(method),
                             hksj=self.hksj(hksj))
