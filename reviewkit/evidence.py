"""The evidence the claims audit weighs claims against, built from this review's own outputs.

* ``pooled_effects(analysis, label)``: a ``reviewkit.meta.SubgroupAnalysis`` as
  per-disorder ``PooledEffect`` objects (natural scale, which arm the CI favours);
* ``pool_analysis(table, pool_group, method, hksj, included)``: the model of one
  pre-specified analysis of the extraction table (``extraction`` → ``effects`` →
  ``meta``), pooling only rows of included studies when ``included`` is given;
* ``pooled_from_extraction(table, pool_group, method, hksj, included)``: its pooled effects;
* ``included_from_screening(state, corpus_records, extraction)``: the included
  studies as the screening module's final full-text decisions say, one row per
  report and disorder, with ``study_id`` so that participants reported twice
  are counted once, and the extraction rows of each report;
* ``included_rows(table, included)``: the extraction rows of included studies.

Both results are plain data that ``reviewkit.claims.audit_claims`` takes as
arguments, so a notebook can pass exactly what it shows.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable, Iterable, Sequence

import pandas as pd

from .citations import fold
from .claims import INCLUDED_COLUMNS, PooledEffect
from .effects import RATIO_MEASURES, effect_sizes
from .errors import ReviewkitError
from .extraction import analysis_rows, pool_measure
from .meta import SubgroupAnalysis, pool_by_disorder
from .protocol import load_protocol

DEFAULT_POOL_GROUP = "abstinence"


def pooled_effects(analysis: SubgroupAnalysis | None, label: str = "") -> dict[str, PooledEffect]:
    """One ``PooledEffect`` per disorder with at least one study; ratios back-transformed.
    None (nothing pooled) gives none."""
    if analysis is None:
        return {}
    ratio = analysis.measure in RATIO_MEASURES
    out = {}
    for disorder, res in analysis.subgroups.items():
        if res is None:
            continue
        est, lo, hi = (math.exp(v) if ratio else v for v in (res.estimate, res.ci_low, res.ci_high))
        # On the analysis scale 0 is no effect, and reviewkit.effects harmonises direction so that
        # above it always favours ketamine.
        favours = "ketamine" if res.ci_low > 0 else "control" if res.ci_high < 0 else "neither"
        out[disorder] = PooledEffect(analysis.measure, est, lo, hi, res.k, favours,
                                     analysis=label, method=analysis.method + (" HKSJ" if analysis.hksj else ""))
    return out


def pool_analysis(table: pd.DataFrame, pool_group: str = DEFAULT_POOL_GROUP, method: str = "REML",
                  hksj: bool = False, included: pd.DataFrame | None = None,
                  disorders: Sequence[str] | None = None) -> SubgroupAnalysis | None:
    """The random-effects model of one pre-specified analysis of the extraction table, by disorder.

    With ``included`` (from ``included_from_screening``) only rows of studies included at full
    text are pooled, and the result is None when no included study is in the analysis. An
    unknown ``pool_group`` is an error either way. Every one of ``disorders`` (default: the
    searches of data/protocol.yml) has its subgroup, with or without a study.
    """
    if disorders is None:
        disorders = tuple(load_protocol().searches)
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


def pooled_from_extraction(table: pd.DataFrame, pool_group: str = DEFAULT_POOL_GROUP, method: str = "REML",
                           hksj: bool = False, included: pd.DataFrame | None = None) -> dict[str, PooledEffect]:
    """Pool one pre-specified analysis of the extraction table by disorder (docs/meta-analysis.md)."""
    return pooled_effects(pool_analysis(table, pool_group, method, hksj, included), label=pool_group)


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


def read_corpus_records(path: str | Path) -> list[dict]:
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ReviewkitError(f"{path}: cannot read the corpus records ({exc})") from None
    out = []
    for lineno, line in enumerate(lines, 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ReviewkitError(f"{path}, line {lineno}: not JSON ({exc})") from None
    return out


def _corpus_keys(rec: dict) -> list[tuple[str, str]]:
    return [("pmid", _text(rec.get("pmid"))), ("doi", _text(rec.get("doi")).lower()),
            ("title", fold(rec.get("title")) and f"{fold(rec.get('title'))} {_year(rec.get('year'))}")]


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


def included_from_screening(state, corpus_records: str | Path, extraction: pd.DataFrame) -> pd.DataFrame:
    """Included reports (full-text ``final == include``, current rows) joined to design and n.

    ``state`` is a ``reviewkit.screening_state.ScreeningState``. The join, per report:

    * identifiers, title, first author, year and disorder(s) from the deduplicated
      record; disorders are the record's ``searches`` (the corpus record's
      ``retrieved_by`` when the record names none);
    * ``study_id``: the full-text sheet's ``study_id``, or the report's own id;
    * ``design`` from the corpus record with the same PMID, else DOI, else title and
      year (``design_from`` names the key; None when no corpus record matches);
    * ``extraction_rows``: the extraction table's ``row_id`` of the rows with the
      same PMID, else DOI, else first-author surname, year and journal (a tuple,
      empty when none matches); ``n`` is the largest ``n_t + n_c`` among them, None
      when no row has both (``n_from`` names the key and the rows matched).

    Raises ReviewkitError when a key matches corpus records that disagree on design.
    """
    sheet = state.sheet("full_text")
    decided = sheet[(sheet["status"] == "") & (sheet["final"] == "include")]
    study_of = {r: (s or r) for r, s in zip(decided["record_id"], decided["study_id"])}
    records = state.dedupe.records
    records = records[records["record_id"].isin(set(study_of))]

    searches = set(state.search_keys)  # the protocol's searches: one disorder each
    corpus = _index(read_corpus_records(corpus_records), _corpus_keys)
    rows_by_key = _index((row for _, row in extraction.iterrows()), _extraction_keys)
    out = []
    for _, rec in records.iterrows():
        title = fold(rec["title"])
        key_name, hits = _lookup([("pmid", _text(rec["pmid"])), ("doi", _text(rec["doi"]).lower()),
                                  ("title", title and f"{title} {_year(rec['year'])}")], corpus)
        designs = sorted({_text(h.get("design")) for h in hits} - {""})
        if len(designs) > 1:
            raise ReviewkitError(f"{corpus_records}: records matching {rec['record_id']} by {key_name} disagree on "
                                 f"design ({', '.join(designs)})")
        disorders = [s for s in rec["searches"] if s in searches] or \
            [d for h in hits for d in (h.get("retrieved_by") or []) if d in searches]
        n_key, n_rows = _lookup([("pmid", _text(rec["pmid"])), ("doi", _text(rec["doi"]).lower()),
                                 ("author-year-journal",
                                  f"{_surname(rec['first_author'])}|{_year(rec['year'])}|{fold(rec['journal'])}")],
                                rows_by_key)
        n = _arm_total(n_rows)
        for disorder in dict.fromkeys(disorders):
            out.append({
                "record_id": rec["record_id"], "study_id": study_of[rec["record_id"]], "disorder": disorder,
                "design": designs[0] if designs else None, "n": n,
                "pmid": _text(rec["pmid"]) or None, "doi": _text(rec["doi"]) or None, "title": rec["title"],
                "first_author": _text(rec["first_author"]) or None, "year": _year(rec["year"]) or None,
                "design_from": f"corpus by {key_name}" if designs else None,
                "n_from": f"extraction by {n_key}: {', '.join(r['row_id'] for r in n_rows)}" if n_rows else None,
                "extraction_rows": tuple(r["row_id"] for r in n_rows),
            })
    frame = pd.DataFrame(out, columns=[*INCLUDED_COLUMNS, "design_from", "n_from", "extraction_rows"])
    frame["n"] = frame["n"].astype("Int64")
    return frame
