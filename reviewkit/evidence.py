"""The evidence the claims audit weighs claims against, built from this review's own outputs.

* ``pooled_effects(analysis, label)``: a ``reviewkit.meta.SubgroupAnalysis`` as
  per-disorder ``PooledEffect`` objects (natural scale, which arm the CI favours);
* ``pool_analysis(table, pool_group, method, hksj, included)``: the model of one
  pre-specified analysis of the extraction table (``extraction`` → ``effects`` →
  ``meta``), pooling only rows of included studies when ``included`` is given;
* ``pooled_from_extraction(table, pool_group, method, hksj, included)``: its pooled effects;
* ``included_from_screening(state, studies, extraction)``: the included
  studies as the screening module's final full-text decisions say, one row per
  report and disorder, with ``study_id`` so that participants reported twice
  are counted once, the study's design (``load_studies``: the project's table
  of included studies) and the extraction rows of each report;
* ``included_rows(table, included)``: the extraction rows of included studies.

Both results are plain data that ``reviewkit.claims.audit_claims`` takes as
arguments, so a notebook can pass exactly what it shows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .effects import RATIO_MEASURES, effect_sizes
from .extraction import DESIGNS, ExtractionError, analysis_rows, pool_measure
from .meta import SubgroupAnalysis, pool_by_disorder
from .text import fold

INCLUDED_COLUMNS = ("record_id", "study_id", "disorder", "design", "n", "pmid", "doi", "title", "first_author", "year")
STUDY_COLUMNS = ("study_id", "study", "design", "source")


@dataclass(frozen=True)
class PooledEffect:
    """A pooled estimate for one disorder, on its natural scale, and which arm its CI favours."""

    measure: str          # e.g. "OR", "SMD"
    estimate: float
    ci_low: float
    ci_high: float
    k: int
    favours: str          # "intervention" (the CI excludes no effect, in its favour), "control" or "neither"
    analysis: str = ""    # the pooled outcome, e.g. "abstinence" (the extraction table's pool_group)
    method: str = ""      # e.g. "REML"
    intervention: str = "intervention"  # its name in sentences, e.g. "ketamine"

    @property
    def null(self) -> float:
        """No difference: 1 for ratios, 0 for differences."""
        return 1.0 if self.measure in RATIO_MEASURES else 0.0

    def text(self) -> str:
        side = self.intervention if self.favours == "intervention" else self.favours
        verdict = f"favours {side}" if self.favours != "neither" else f"CI includes {self.null:g}, no difference"
        model = ", ".join(x for x in (f"k={self.k}", self.method) if x)
        what = f"{self.analysis} {self.measure}" if self.analysis else self.measure
        return (f"pooled {what} {self.estimate:.2f} (95% CI {self.ci_low:.2f} to {self.ci_high:.2f}; {model}): "
                f"{verdict}")


def pooled_effects(analysis: SubgroupAnalysis | None, label: str = "",
                   intervention: str = "intervention") -> dict[str, PooledEffect]:
    """One ``PooledEffect`` per disorder with at least one study; ratios back-transformed.
    None (nothing pooled) gives none. ``intervention`` names the intervention in sentences."""
    if analysis is None:
        return {}
    ratio = analysis.measure in RATIO_MEASURES
    out = {}
    for disorder, res in analysis.subgroups.items():
        if res is None:
            continue
        est, lo, hi = (math.exp(v) if ratio else v for v in (res.estimate, res.ci_low, res.ci_high))
        # On the analysis scale 0 is no effect, and reviewkit.effects harmonises direction so that
        # above it always favours the intervention.
        favours = "intervention" if res.ci_low > 0 else "control" if res.ci_high < 0 else "neither"
        out[disorder] = PooledEffect(analysis.measure, est, lo, hi, res.k, favours, analysis=label,
                                     method=analysis.method + (" HKSJ" if analysis.hksj else ""),
                                     intervention=intervention)
    return out


def pool_analysis(table: pd.DataFrame, pool_group: str, method: str, hksj: bool, *,
                  disorders: Sequence[str], included: pd.DataFrame | None = None) -> SubgroupAnalysis | None:
    """The random-effects model of one pre-specified analysis of the extraction table, by disorder.

    With ``included`` (from ``included_from_screening``) only rows of studies included at full
    text are pooled, and the result is None when no included study is in the analysis. An
    unknown ``pool_group`` is an error either way. Every one of ``disorders`` (the protocol's
    searches) has its subgroup, with or without a study.
    """
    rows = analysis_rows(table, pool_group)
    if included is not None:
        rows = included_rows(rows, included)
        if rows.empty:
            return None
    return pool_by_disorder(effect_sizes(rows, pool_measure(rows)), method=method, hksj=hksj, disorders=disorders)


def included_rows(table: pd.DataFrame, included: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``table`` (extraction) that ``included_from_screening`` joined to an included report."""
    row_ids = {r for rows in included["extraction_rows"] for r in rows}
    return table[table["row_id"].isin(row_ids)]


def _text(value: object) -> str:
    """A cell as text, "" when missing (records hold None, NaN or pd.NA)."""
    return "" if value is None or pd.isna(value) else str(value)


def _year(value: object) -> str:
    text = _text(value)
    return text[:-2] if text.endswith(".0") else text


def _surname(author: object) -> str:
    """"Krupitsky EM" → "krupitsky" (the extraction names studies "<surname> <year>")."""
    words = fold(_text(author)).split()
    return " ".join(words[:-1]) if len(words) > 1 else "".join(words)


def _lookup(keys: Iterable[tuple[str, str]], index: dict[tuple[str, str], list]) -> tuple[str, list]:
    """The first key (in order of preference) that finds anything: (key name, matches)."""
    for name, value in keys:
        if value and index.get((name, value)):
            return name, index[(name, value)]
    return "", []


def _index(items: Iterable, keys: Callable[[object], Iterable[tuple[str, str]]]) -> dict[tuple[str, str], list]:
    index: dict[tuple[str, str], list] = {}
    for item in items:
        for key in keys(item):
            if key[1]:
                index.setdefault(key, []).append(item)
    return index


def load_studies(path: str | Path) -> pd.DataFrame:
    """The table of included studies (``studies.csv``: ``study_id, study, design, source``).

    ``study_id`` is the screening's study id (the full-text sheet's ``study_id``, or the main
    report's record id); ``design`` one of ``reviewkit.extraction.DESIGNS``. A missing file is an
    empty table: every included study then has no recorded design. Problems name file, row, column.
    """
    path = Path(path)
    if not path.is_file():
        return pd.DataFrame(columns=list(STUDY_COLUMNS))
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise ExtractionError(f"{path}: cannot read the table of included studies ({type(exc).__name__})") from None
    missing = [c for c in STUDY_COLUMNS if c not in table.columns]
    if missing:
        raise ExtractionError(f"{path}: missing column(s) {', '.join(missing)}")
    table = table.apply(lambda col: col.str.strip())
    for i, row in table.iterrows():
        at = f"{path}, row {i + 2}"
        if not row["study_id"]:
            raise ExtractionError(f"{at}, column 'study_id': must not be empty")
        if row["design"] and row["design"] not in DESIGNS:
            raise ExtractionError(f"{at}, column 'design': {row['design'][:40]!r} is not one of {', '.join(DESIGNS)}")
    twice = table["study_id"][table["study_id"].duplicated()]
    if not twice.empty:
        raise ExtractionError(f"{path}: study_id {twice.iloc[0][:60]!r} appears more than once")
    return table.replace("", None)


def _extraction_keys(row: pd.Series) -> list[tuple[str, str]]:
    # data/extraction/README.md: pmid, doi and journal were copied from the corpus record with the
    # same first author, year and journal, so that triple is the key when both identifiers are empty.
    surname, _, year = _text(row["study"]).rpartition(" ")
    return [("pmid", _text(row["pmid"])), ("doi", _text(row["doi"]).lower()),
            ("author-year-journal", f"{fold(surname)}|{year}|{fold(row['journal'])}" if row["journal"] else "")]


def _arm_total(rows: list[pd.Series]) -> int | None:
    """The largest n_t + n_c over a study's comparisons with both arm sizes (the participants randomized
    or enrolled; smaller totals are subsets such as one factorial cell against another)."""
    totals = [int(r["n_t"]) + int(r["n_c"]) for r in rows if not pd.isna(r["n_t"]) and not pd.isna(r["n_c"])]
    return max(totals) if totals else None


def included_from_screening(state, studies: pd.DataFrame, extraction: pd.DataFrame) -> pd.DataFrame:
    """Included reports (full-text ``final == include``, current rows) joined to design and n.

    ``state`` is a ``reviewkit.screening_state.ScreeningState``, ``studies`` the table of
    included studies (``load_studies``). The join, per report:

    * identifiers, title, first author, year and disorder(s) from the deduplicated
      record; disorders are the record's ``searches``;
    * ``study_id``: the full-text sheet's ``study_id``, or the report's own id;
    * ``design`` from the studies table row of that study (``design_from`` says so;
      None when the study has no row or no design);
    * ``extraction_rows``: the extraction table's ``row_id`` of the rows with the
      same PMID, else DOI, else first-author surname, year and journal (a tuple,
      empty when none matches); ``n`` is the largest ``n_t + n_c`` among them, None
      when no row has both (``n_from`` names the key and the rows matched).

    """
    sheet = state.sheet("full_text")
    decided = sheet[(sheet["status"] == "") & (sheet["final"] == "include")]
    study_of = {r: (s or r) for r, s in zip(decided["record_id"], decided["study_id"])}
    records = state.dedupe.records
    records = records[records["record_id"].isin(set(study_of))]

    searches = set(state.search_keys)  # the protocol's searches: one disorder each
    design_of = {sid: d for sid, d in zip(studies["study_id"], studies["design"]) if d}
    rows_by_key = _index((row for _, row in extraction.iterrows()), _extraction_keys)
    out = []
    for _, rec in records.iterrows():
        study = study_of[rec["record_id"]]
        design = design_of.get(study)
        disorders = [s for s in rec["searches"] if s in searches]
        n_key, n_rows = _lookup([("pmid", _text(rec["pmid"])), ("doi", _text(rec["doi"]).lower()),
                                 ("author-year-journal",
                                  f"{_surname(rec['first_author'])}|{_year(rec['year'])}|{fold(rec['journal'])}")],
                                rows_by_key)
        n = _arm_total(n_rows)
        for disorder in dict.fromkeys(disorders):
            out.append({
                "record_id": rec["record_id"], "study_id": study, "disorder": disorder,
                "design": design, "n": n,
                "pmid": _text(rec["pmid"]) or None, "doi": _text(rec["doi"]) or None, "title": rec["title"],
                "first_author": _text(rec["first_author"]) or None, "year": _year(rec["year"]) or None,
                "design_from": f"studies table, {study}" if design else None,
                "n_from": f"extraction by {n_key}: {', '.join(r['row_id'] for r in n_rows)}" if n_rows else None,
                "extraction_rows": tuple(r["row_id"] for r in n_rows),
            })
    frame = pd.DataFrame(out, columns=[*INCLUDED_COLUMNS, "design_from", "n_from", "extraction_rows"])
    frame["n"] = frame["n"].astype("Int64")
    return frame
