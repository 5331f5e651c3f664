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
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ReviewkitError
from .project import Project

if TYPE_CHECKING:
    import pandas as pd

    from .audit import ArticleAudit
    from .ctgov import RegisterResult
    from .entrez import Credentials, SearchResult
    from .prisma import PrismaReport
    from .screening_state import ScreeningState
    from .snapshot import Snapshot
    from .synthesis import Synthesis

log = logging.getLogger(__name__)

LIVE_NOTE = "PubMed searches run live by reviewkit."
EXTRACTION_FILE = "outcomes.csv"
STUDIES_FILE = "studies.csv"
RISK_OF_BIAS_FILE = "risk_of_bias.csv"


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
        self._registered: list[RegisterResult] | None = None
        self._syntheses: dict[tuple[str, bool], list[Synthesis]] = {}

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
        """Run (live) or replay (offline) the chosen searches, once, in PubMed and in the protocol's
        registers (``registers()``); live runs record every exchange. Returns the PubMed searches."""
        from .entrez import run_searches

        if self._searched is None:
            log.info("%s searches: %s", "running" if self.live else "replaying",
                     ", ".join(self.searches or self.protocol.searches))
            self._searched = run_searches(self.transport(), self.protocol, self.searches or None,
                                          progress=self.progress)
        self.registers()
        return self._searched

    def register_transport(self):
        """Live: requests go to ClinicalTrials.gov (``REVIEWKIT_CTGOV_URL``) and are recorded; offline: replayed."""
        from .ctgov import CTGOV
        from .transport import ApiTransport, ReplayTransport

        return ApiTransport(self.snapshot, CTGOV) if self.live else ReplayTransport(self.snapshot)

    def registers(self) -> list[RegisterResult]:
        """The chosen searches in the protocol's trial registers, once: run live and recorded, or replayed.

        Offline, a search the snapshot holds no register search of (the sample; a snapshot recorded
        before the protocol listed registers) reads "not searched in this sample" / "... in this
        snapshot" (a count of None, never 0); one it holds is replayed, and a missing page is named.
        """
        from .ctgov import MANIFESTS, not_searched, search_register

        if self._registered is None:
            keys = [s.key for s in self.protocol.select(self.searches or None)]
            recorded = set(self.snapshot.search_keys(MANIFESTS))
            where = "this sample" if self.is_sample else "this snapshot"
            transport = self.register_transport() if self.protocol.registers else None
            self._registered = [
                search_register(transport, self.protocol, k) if self.live or k in recorded
                else not_searched(self.protocol, k, f"not searched in {where}")
                for k in keys] if transport is not None else []
        return self._registered

    def records(self) -> pd.DataFrame:
        """The PubMed records of the chosen searches, one row per PMID.

        Read from the snapshot, unless a screening state at hand (:meth:`state_at_hand`) holds them:
        the same table, without parsing every record again (40 s at 100,000 records).
        """
        from .records import load_records

        state = None if self.searches else self.state_at_hand()
        held = state.pubmed_records() if state is not None else None
        return held if held is not None else load_records(self.snapshot, self.searches or None)

    def register_records(self) -> pd.DataFrame:
        """The registrations the chosen searches found in the trial registers, one row per NCT id."""
        from .ctgov import load_register_records

        return load_register_records(self.snapshot, self.searches or None)

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

    def state_at_hand(self) -> ScreeningState | None:
        """The screening state if this review has it without building it: computed already, or handed over
        by ``reviewkit run`` for these inputs (then kept as :attr:`state`); else None."""
        if "state" not in self.__dict__:
            from .screening_state import handed_state

            handed = handed_state(self.snapshot_dir, self.screening_dir, self.protocol)
            if handed is None:
                return None
            self.__dict__["state"] = handed  # what the cached property would have computed
        return self.__dict__["state"]

    def save_screening(self, folder: str | Path | None = None) -> list[Path]:
        """Write the sheets and deduplication logs (to the screening folder, or ``folder``)."""
        from .screening_state import write_state

        return write_state(self.state, Path(folder) if folder else self.screening_dir)

    @property
    def registered_studies(self) -> pd.DataFrame:
        """Registrations listed as Cochrane's "ongoing studies" and "studies awaiting classification":
        registrations no publication was merged into, not excluded by a screener (``reviewkit.ctgov``)."""
        from .ctgov import registered_studies

        state = self.state
        excluded: set[str] = set()
        for stage in ("title_abstract", "full_text"):
            sheet = state.sheet(stage)
            excluded |= set(sheet.loc[(sheet["status"] == "") & (sheet["final"] == "exclude"), "record_id"])
        return registered_studies(state.dedupe.records, excluded)

    @cached_property
    def retracted_included(self) -> pd.DataFrame:
        """Reports included at full text that a retraction notice names (PubMed's "Retracted Publication"
        type or a RetractionIn link; Crossref notices a record carries): each must be looked at again."""
        from .retractions import flag_records

        sheet = self.state.sheet("full_text")
        included = set(sheet.loc[(sheet["status"] == "") & (sheet["final"] == "include"), "record_id"])
        records = self.state.dedupe.records
        flagged = flag_records(records[records["record_id"].isin(included)], pubmed_checked=not self.is_sample)
        return flagged[flagged["retracted"] == True]  # noqa: E712 (True, not None or False)

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

    @property
    def risk_of_bias_file(self) -> Path:
        return self.project.path("extraction") / RISK_OF_BIAS_FILE

    @cached_property
    def studies(self) -> pd.DataFrame:
        """The table of included studies (design, participants, population)."""
        from .evidence import load_studies

        return load_studies(self.studies_file)

    @cached_property
    def extraction(self) -> pd.DataFrame:
        from .extraction import load_extraction

        return load_extraction(self.extraction_file, self.protocol, self.studies)

    @cached_property
    def included(self) -> pd.DataFrame:
        """The reports included at full text, with their study's design and size."""
        from .evidence import included_from_screening

        return included_from_screening(self.state, self.studies)

    def syntheses(self, method: str | None = None, hksj: bool | None = None) -> list[Synthesis]:
        """Every synthesis (disorder x outcome domain x comparison) of the included studies, with its
        GRADE certainty; ``method`` and ``hksj`` default to the protocol's."""
        from .grade import assess
        from .synthesis import syntheses, with_certainty

        key = (method or self.protocol.analysis.method, self.protocol.analysis.hksj if hksj is None else bool(hksj))
        if key not in self._syntheses:
            items = syntheses(self.extraction, self.included, self.studies, self.protocol, method=key[0],
                              hksj=key[1])
            rob = self.risk_of_bias_judge()
            self._syntheses[key] = with_certainty(items, lambda s: assess(s, rob))
        return self._syntheses[key]

    @cached_property
    def risk_of_bias(self) -> pd.DataFrame:
        """The risk-of-bias table (``reviewkit.rob.load_risk_of_bias``); empty when the project has none."""
        from .rob import load_risk_of_bias

        return load_risk_of_bias(self.risk_of_bias_file, self.studies, tuple(self.protocol.outcomes))

    def risk_of_bias_judge(self) -> Callable[[str, str | None], str | None]:
        """``(study_id, outcome_domain) -> overall judgement`` from the risk-of-bias table; None for a study
        not assessed, which GRADE treats as "no information"."""
        from .rob import RiskOfBiasError, judgement_for

        table = self.risk_of_bias

        def judge(study_id: str, outcome_domain: str | None) -> str | None:
            try:
                return judgement_for(table, study_id, outcome_domain)
            except RiskOfBiasError:
                return None
        return judge

    def high_risk_studies(self) -> set[str]:
        """Study ids judged at high risk of bias overall (RoB 2 high; ROBINS-I serious or critical)."""
        from .grade import HIGH_RISK

        judge = self.risk_of_bias_judge()
        return {sid for sid in self.studies["study_id"] if (judge(sid, None) or "") in HIGH_RISK}

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

        # Offline, a screening state at hand (handed over by reviewkit run, or built for the included
        # studies) has the snapshot's records read: they are not read again.
        state = None if self.live else self.state_at_hand()
        records = state.identified if state is not None else None
        return candidate_source(self.snapshot, live=self.live, records=records)

    def audit(self, method: str | None = None, hksj: bool | None = None) -> ArticleAudit:
        """The article's references checked and each claim judged on its citation and on the syntheses."""
        from .audit import audit_article

        if not self.has_article:
            raise ReviewkitError(f"this project has no article to audit: {self.project.relative(self.article_dir)} "
                                 "needs claims.yml and references.txt")
        included = self.included  # first: the screening state it needs also serves citation_source
        return audit_article(self.article_dir, self.protocol, self.citation_source(), included,
                             self.syntheses(method, hksj))
