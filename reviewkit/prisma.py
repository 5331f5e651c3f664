"""PRISMA 2020 flow counts, computed from the screening state, never typed.

Definitions (new reviews, databases and other methods):

databases and registers column
  identified            records each database and register returned, added up
                        over the searches (a PMID found by two searches counts
                        twice): what PRISMA 2020 counts as identified, before
                        duplicates are removed (explanation and elaboration,
                        item 16a). A register the protocol lists but the
                        snapshot never searched is in ``not_searched`` with the
                        words shown instead of a count ("not searched in this
                        sample"); JSON gives it ``null`` in ``identified``,
                        never 0
  duplicates_removed    identified minus the database and register records left
                        after deduplication: the records several searches
                        found, plus the duplicates ``reviewkit.dedupe`` merged
                        (registrations merged into their publications among them)
  removed_other         0: reviewkit removes nothing else before screening
  records_screened      records with a final title/abstract decision
  records_excluded      ... of which exclude
  reports_sought        ... of which include (their reports are sought)
  reports_not_retrieved full-text rows marked ``retrieved = no``
  reports_assessed      full-text rows with a final decision
  reports_excluded      full-text exclusions grouped by reason
other methods column
  identified            records per method that the databases had not already
                        found (a duplicate of a database record is in the
                        merge log, and counted once, in the databases column)
  reports_sought        all of them; the rest as above
studies_included        distinct studies among included reports (reports
                        sharing a full-text ``study_id`` are one study)
reports_included        included reports, both columns

Counts for one search (``by_disorder``) use the records that search found
(for other methods, those whose ``searches`` name it); a record found by
several searches counts in each. The searches' "identified" add up to the
overall one; the boxes after deduplication do not.

Records still awaiting a decision are counted in ``awaiting_*`` fields (not in
the JSON shape): the flow is complete when they are 0. :func:`check` fails
loudly when any box does not add up.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from .dedupe import DATABASE_SOURCES, REGISTER_SOURCES, SEARCHED_SOURCES
from .errors import ReviewkitError
from .screening_state import ScreeningState


@dataclass(frozen=True)
class ReportCounts:
    """The report boxes of one column."""

    sought: int
    not_retrieved: int
    assessed: int
    excluded: dict[str, int]
    included: int
    awaiting: int  # sought, not yet marked not retrieved or decided


@dataclass(frozen=True)
class DatabaseCounts:
    identified: dict[str, int]
    duplicates_removed: int
    removed_other: int
    records_screened: int
    records_excluded: int
    records_awaiting: int
    reports: ReportCounts
    not_searched: dict[str, str] = field(default_factory=dict)  # register -> "not searched in this sample"

    @property
    def from_databases(self) -> int:
        return sum(n for s, n in self.identified.items() if s not in REGISTER_SOURCES)

    @property
    def from_registers(self) -> int | str:
        """Records from registers, or the words for registers not searched (never 0 for those)."""
        if self.not_searched and not any(s in REGISTER_SOURCES for s in self.identified):
            return "; ".join(f"{r} {why}" for r, why in self.not_searched.items())
        return sum(n for s, n in self.identified.items() if s in REGISTER_SOURCES)


@dataclass(frozen=True)
class OtherMethodCounts:
    identified: dict[str, int]
    reports: ReportCounts


@dataclass(frozen=True)
class PrismaCounts:
    databases: DatabaseCounts
    other_methods: OtherMethodCounts
    studies_included: int
    reports_included: int

    @property
    def complete(self) -> bool:
        return not (self.databases.records_awaiting or self.databases.reports.awaiting
                    or self.other_methods.reports.awaiting)

    def boxes(self) -> dict[str, int | str]:
        """The flow as flat, labelled totals (databases and other methods added up), for tables and run
        comparisons; registers not searched read as words, not 0."""
        db, om = self.databases, self.other_methods
        return {
            "records identified from databases": db.from_databases,
            "records identified from registers": db.from_registers,
            "records identified from other methods": sum(om.identified.values()),
            "duplicates removed": db.duplicates_removed,
            "records screened": db.records_screened,
            "records excluded": db.records_excluded,
            "records awaiting screening": db.records_awaiting,
            "reports sought": db.reports.sought + om.reports.sought,
            "reports not retrieved": db.reports.not_retrieved + om.reports.not_retrieved,
            "reports assessed": db.reports.assessed + om.reports.assessed,
            "reports excluded": sum(db.reports.excluded.values()) + sum(om.reports.excluded.values()),
            "reports awaiting assessment": db.reports.awaiting + om.reports.awaiting,
            "studies included": self.studies_included,
            "reports included": self.reports_included,
        }

    def to_dict(self) -> dict:
        def reports(r: ReportCounts) -> dict:
            return {"reports_sought": r.sought, "reports_not_retrieved": r.not_retrieved,
                    "reports_assessed": r.assessed, "reports_excluded": dict(r.excluded)}

        db = self.databases
        return {
            "databases": {"identified": {**db.identified, **dict.fromkeys(db.not_searched)},
                          "not_searched": dict(db.not_searched), "duplicates_removed": db.duplicates_removed,
                          "removed_other": db.removed_other, "records_screened": db.records_screened,
                          "records_excluded": db.records_excluded, **reports(db.reports)},
            "other_methods": {"identified": dict(self.other_methods.identified),
                              **reports(self.other_methods.reports)},
            "studies_included": self.studies_included,
            "reports_included": self.reports_included,
        }


@dataclass(frozen=True)
class PrismaReport:
    sample: bool
    overall: PrismaCounts
    by_disorder: dict[str, PrismaCounts] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"sample": self.sample, "overall": self.overall.to_dict(),
                "by_disorder": {k: c.to_dict() for k, c in self.by_disorder.items()}}


def _reports(rows: pd.DataFrame) -> ReportCounts:
    assessed = rows[rows["final"] != ""]
    excluded = Counter(assessed.loc[assessed["final"] == "exclude", "exclusion_reason"])
    not_retrieved = int((rows["retrieved"] == "no").sum())
    return ReportCounts(sought=len(rows), not_retrieved=not_retrieved, assessed=len(assessed),
                        excluded=dict(sorted(excluded.items(), key=lambda kv: (-kv[1], kv[0]))),
                        included=int((assessed["final"] == "include").sum()),
                        awaiting=len(rows) - not_retrieved - len(assessed))


def _in_search(frame: pd.DataFrame, key: str | None) -> pd.Series:
    if key is None:
        return pd.Series(True, index=frame.index)
    return frame["searches"].map(lambda s: key in (s or []))


def _hits(frame: pd.DataFrame, search: str | None) -> pd.Series:
    """How many times each record was returned: by every search that found it, or once by ``search``."""
    if search is not None:
        return pd.Series(1, index=frame.index)
    return frame["searches"].map(lambda s: max(1, 0 if s is None else len(s)))


def _found_by_database_search(state: ScreeningState, kept_db: pd.DataFrame, key: str) -> pd.Series:
    """Whether a kept database (or register) record stands for one that search ``key`` found.

    A kept record carries the searches of every record merged into it, and a reference from citation
    searching may name a search (``searches``): merged into a database record that only another search
    found, it is a duplicate removed (as in the overall counts), not a record that ``key``'s database
    search identified, or the search's database column would count more records kept than found.
    """
    raw = state.identified
    db_raw = raw[raw["source"].isin(SEARCHED_SOURCES)]
    found = set(db_raw.loc[_in_search(db_raw, key), "record_id"])
    merged = kept_db["merged_ids"] if "merged_ids" in kept_db else pd.Series([[]] * len(kept_db), index=kept_db.index)
    return pd.Series([rid in found or any(m in found for m in (others or []))
                      for rid, others in zip(kept_db["record_id"], merged)], index=kept_db.index, dtype=bool)


def prisma_counts(state: ScreeningState, search: str | None = None) -> PrismaCounts:
    """Counts for the whole review, or for one search key; checked by :func:`check`.

    For one search, a database record counts when that search found it or a database record merged
    into it (:func:`_found_by_database_search`); a record from other methods when it names the search.
    """
    raw = state.identified[_in_search(state.identified, search)]
    kept = state.dedupe.records[_in_search(state.dedupe.records, search)]
    if search is not None:
        is_searched = kept["source"].isin(SEARCHED_SOURCES)
        counted = pd.Series(True, index=kept.index)
        counted[is_searched] = _found_by_database_search(state, kept[is_searched], search)
        kept = kept[counted]
    kept_db = kept[kept["source"].isin(SEARCHED_SOURCES)]
    kept_other = kept[~kept["source"].isin(SEARCHED_SOURCES)]
    raw_db = raw[raw["source"].isin(SEARCHED_SOURCES)]
    hits = _hits(raw_db, search)

    def current(stage: str, ids: pd.Series) -> pd.DataFrame:
        sheet = state.sheet(stage)
        return sheet[(sheet["status"] == "") & sheet["record_id"].isin(set(ids))]

    ta = current("title_abstract", kept_db["record_id"])
    ft = current("full_text", kept["record_id"])
    ft_db = ft[ft["record_id"].isin(set(kept_db["record_id"]))]
    ft_other = ft[ft["record_id"].isin(set(kept_other["record_id"]))]
    screened = ta[ta["final"] != ""]
    included = ft[ft["final"] == "include"]
    studies = included["study_id"].where(included["study_id"] != "", included["record_id"])
    not_searched = state.not_searched(search)
    found = {s: int(n) for s, n in hits.groupby(raw_db["source"]).sum().items()}
    # Databases first, then registers; a register searched that found nothing is a 0, one not searched is not.
    searched_registers = [r for r in state.registers if r not in not_searched]
    identified = {**{s: found.get(s, 0) for s in sorted(found) if s in DATABASE_SOURCES},
                  **{s: found.get(s, 0) for s in sorted({*found, *searched_registers}) if s in REGISTER_SOURCES}}
    counts = PrismaCounts(
        databases=DatabaseCounts(
            identified=identified if any(s in DATABASE_SOURCES for s in identified) else {"PubMed": 0, **identified},
            duplicates_removed=int(hits.sum()) - len(kept_db), removed_other=0,
            records_screened=len(screened), records_excluded=int((screened["final"] == "exclude").sum()),
            records_awaiting=len(ta) - len(screened), reports=_reports(ft_db), not_searched=not_searched),
        other_methods=OtherMethodCounts(
            identified={s: int(n) for s, n in kept_other["source"].value_counts().sort_index().items()}
            or {"Citation searching": 0},
            reports=_reports(ft_other)),
        studies_included=int(studies.nunique()),
        reports_included=len(included),
    )
    check(counts, where=f"search {search!r}" if search else "overall", ta_included=int((screened["final"] == "include").sum()))
    return counts


def check(c: PrismaCounts, where: str = "overall", ta_included: int | None = None) -> None:
    """Every box adds up, or a ReviewkitError listing what does not."""
    db, om = c.databases, c.other_methods
    problems = []

    def need(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    need(sum(db.identified.values()) - db.duplicates_removed - db.removed_other
         == db.records_screened + db.records_awaiting,
         "databases: identified - removed before screening != records screened + awaiting screening")
    if ta_included is not None:
        need(db.reports.sought == ta_included,
             "databases: reports sought != records included at title/abstract")
    for name, r in (("databases", db.reports), ("other methods", om.reports)):
        need(r.sought == r.not_retrieved + r.assessed + r.awaiting,
             f"{name}: reports sought != not retrieved + assessed + awaiting")
        need(r.assessed == sum(r.excluded.values()) + r.included,
             f"{name}: reports assessed != excluded with reasons + included")
    need(sum(om.identified.values()) == om.reports.sought, "other methods: identified != reports sought")
    need(c.reports_included == db.reports.included + om.reports.included,
         "reports included != included from databases + from other methods")
    need(c.studies_included <= c.reports_included, "more studies than reports included")
    need(all(n >= 0 for n in (db.duplicates_removed, db.records_excluded, db.records_awaiting)),
         "a negative count")
    if problems:
        raise ReviewkitError(f"PRISMA counts ({where}) do not add up: " + "; ".join(problems))


def prisma_report(state: ScreeningState) -> PrismaReport:
    """Overall counts and counts per search, as the ``prisma --json`` command prints them."""
    return PrismaReport(sample=state.sample, overall=prisma_counts(state),
                        by_disorder={key: prisma_counts(state, key) for key in state.search_keys})
