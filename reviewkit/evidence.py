"""Which studies are included, and what is known about each: the evidence the syntheses and the audit use.

* ``load_studies(path)``: the project's table of included studies
  (``extraction/studies.csv``: study id, label, design, participants randomized,
  enrolled and analysed, population, source), checked;
* ``included_from_screening(state, studies)``: the reports the screening includes
  at full text, one row per report and disorder, with ``study_id`` so that
  participants reported twice are counted once, and the study's design and size
  from the studies table (never guessed: a study without a row there has none).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .extraction import DESIGNS, ExtractionError

INCLUDED_COLUMNS = ("record_id", "study_id", "disorder", "design", "n", "pmid", "doi", "title", "first_author", "year")
STUDY_COLUMNS = ("study_id", "study", "design", "n_randomized", "n_enrolled", "n_analysed", "population", "source")
COUNT_COLUMNS = ("n_randomized", "n_enrolled", "n_analysed")
MAX_STUDIES = 100_000


def load_studies(path: str | Path) -> pd.DataFrame:
    """The table of included studies; a missing file is an empty table. Problems name file, row, column.

    ``study_id`` is the screening's study id (the full-text sheet's ``study_id``, or the main
    report's record id); ``design`` one of ``reviewkit.extraction.DESIGNS``; the counts are whole
    numbers or empty (unknown).
    """
    path = Path(path)
    if not path.is_file():
        return pd.DataFrame({c: pd.Series(dtype="Int64" if c in COUNT_COLUMNS else object) for c in STUDY_COLUMNS})
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, nrows=MAX_STUDIES + 1)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ExtractionError(f"{path}: cannot read the table of included studies ({type(exc).__name__})") from None
    missing = [c for c in STUDY_COLUMNS if c not in table.columns]
    if missing:
        raise ExtractionError(f"{path}: missing column(s) {', '.join(missing)}")
    table = table[list(STUDY_COLUMNS)].apply(lambda col: col.str.strip())
    for i, row in table.iterrows():
        at = f"{path}, row {i + 2}"
        if not row["study_id"]:
            raise ExtractionError(f"{at}, column 'study_id': must not be empty")
        if row["design"] and row["design"] not in DESIGNS:
            raise ExtractionError(f"{at}, column 'design': {row['design'][:40]!r} is not one of {', '.join(DESIGNS)}")
        for col in COUNT_COLUMNS:
            if row[col] and not row[col].isdigit():
                raise ExtractionError(f"{at}, column {col!r}: {row[col][:20]!r} is not a whole number")
    twice = table["study_id"][table["study_id"].duplicated()]
    if not twice.empty:
        raise ExtractionError(f"{path}: study_id {twice.iloc[0][:60]!r} appears more than once")
    out = pd.DataFrame({c: pd.Series([v or None for v in table[c]], dtype=object) for c in STUDY_COLUMNS})
    for col in COUNT_COLUMNS:
        out[col] = pd.array([int(v) if v else None for v in table[col]], dtype="Int64")
    return out


def study_size(study: pd.Series) -> int | None:
    """Participants a study randomized, else enrolled (None when the sources give neither)."""
    for col in ("n_randomized", "n_enrolled"):
        if pd.notna(study.get(col)):
            return int(study[col])
    return None


def _text(value: object) -> str:
    """A cell as text, "" when missing (records hold None, NaN or pd.NA)."""
    return "" if value is None or pd.isna(value) else str(value)


def _year(value: object) -> str:
    text = _text(value)
    return text[:-2] if text.endswith(".0") else text


def included_from_screening(state, studies: pd.DataFrame) -> pd.DataFrame:
    """Included reports (full-text ``final == include``, current rows) joined to their study.

    ``state`` is a ``reviewkit.screening_state.ScreeningState``, ``studies`` the table of
    included studies (``load_studies``). Per report: identifiers, title, first author, year and
    disorder(s) from the deduplicated record (its ``searches``); ``study_id``, the full-text
    sheet's ``study_id`` or the report's own id; ``design`` and ``n`` (randomized, else
    enrolled) from the study's row in ``studies`` (None when it has none; ``design_from``
    says where).
    """
    sheet = state.sheet("full_text")
    decided = sheet[(sheet["status"] == "") & (sheet["final"] == "include")]
    study_of = {r: (s or r) for r, s in zip(decided["record_id"], decided["study_id"])}
    records = state.dedupe.records
    records = records[records["record_id"].isin(set(study_of))]
    searches = set(state.search_keys)  # the protocol's searches: one disorder each
    by_id = {row["study_id"]: row for _, row in studies.iterrows()}
    out = []
    for _, rec in records.iterrows():
        study = study_of[rec["record_id"]]
        row = by_id.get(study)
        design = row["design"] if row is not None else None
        for disorder in dict.fromkeys(s for s in rec["searches"] if s in searches):
            out.append({
                "record_id": rec["record_id"], "study_id": study, "disorder": disorder, "design": design,
                "n": study_size(row) if row is not None else None,
                "pmid": _text(rec["pmid"]) or None, "doi": _text(rec["doi"]) or None, "title": rec["title"],
                "first_author": _text(rec["first_author"]) or None, "year": _year(rec["year"]) or None,
                "design_from": f"studies table, {study}" if design else None,
            })
    frame = pd.DataFrame(out, columns=[*INCLUDED_COLUMNS, "design_from"])
    frame["n"] = frame["n"].astype("Int64")
    return frame
