"""Screening sheets: one per stage, written for people, read back keyed by record id.

A sheet is a table of strings. reviewkit owns the bibliographic columns
(:data:`INFO_COLUMNS`, refreshed from the records on every run) and the
``status`` column; people own the decision columns (:data:`HUMAN_COLUMNS`),
which reviewkit never changes: a rerun adds new records as unscreened rows,
keeps every decision, and keeps (with ``status`` "no longer retrieved") a row
whose record has left the candidates but holds a human entry. Columns a person
adds (``my_tags``) are theirs too: kept, written back, blank on new rows.

Stages: ``title_abstract`` screens the database records; ``full_text`` assesses
the reports of records included at title/abstract plus the records from other
methods (PRISMA 2020 sends those straight to retrieval).

Decisions are ``include`` / ``exclude`` (any case) or blank (not yet decided).
The ``final`` column is the decision PRISMA counts; with dual screening,
``reviewer1`` and ``reviewer2`` feed Cohen's kappa and the conflicts list.
On the full-text sheet ``retrieved`` is ``yes`` / ``no`` / blank and
``study_id`` links reports of one study (blank: the report is its own study).

People edit the sheets while reviewkit runs. Writing is locked
(``.reviewkit.lock`` in the folder: reviewkit processes take turns) and
compares the files with what was read: when someone saved in between, their
entries are merged cell by cell with reviewkit's (an entry only one side
changed is taken; the same cell changed to two different values stops the
write with a message, and nothing is written). A sheet that cannot be read
whole (cut short, not UTF-8, damaged) is an error naming it, and nothing is
written. Cells are formula-safe (``reviewkit.tables``).
"""

from __future__ import annotations

import hashlib
import logging
import re
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ReviewkitError
from .io import atomic_write_bytes, atomic_write_text, contained, locked, read_bytes, remove_stale_temporaries
from .redact import excerpt
from .tables import csv_text, read_csv, read_xlsx, xlsx_bytes

log = logging.getLogger(__name__)

STAGES = ("title_abstract", "full_text")
STAGE_LABELS = {"title_abstract": "title/abstract", "full_text": "full text"}

INFO_COLUMNS = ["record_id", "source", "title", "abstract", "authors", "journal", "year",
                "publication_types", "searches", "suggestion", "suggestion_reason"]
HUMAN_COLUMNS = {
    "title_abstract": ["reviewer1", "reviewer2", "final", "exclusion_reason", "notes"],
    "full_text": ["retrieved", "reviewer1", "reviewer2", "final", "exclusion_reason", "study_id", "notes"],
}
STATUS_COLUMN = "status"
#: reviewkit's screening order for people who screen in a spreadsheet: 1 is the record most likely to be
#: included (``reviewkit.prioritise``), blank once decided; refreshed on every write, never a decision.
PRIORITY_COLUMN = "priority"
NO_LONGER_RETRIEVED = "no longer retrieved"
DECISIONS = ("include", "exclude")
DECISION_COLUMNS = ("reviewer1", "reviewer2", "final")
RETRIEVED = ("yes", "no")
#: What reviewkit itself writes in the columns it owns but people might type into.
OWN_VALUES = {STATUS_COLUMN: ("", NO_LONGER_RETRIEVED), "suggestion": ("", "exclude", "check"),
              PRIORITY_COLUMN: ("",)}  # and whole numbers from 1 (_PRIORITY)
_PRIORITY = re.compile(r"[1-9][0-9]{0,8}")
LOCK_FILE = ".reviewkit.lock"


def sheet_columns(stage: str) -> list[str]:
    return INFO_COLUMNS + [PRIORITY_COLUMN] + HUMAN_COLUMNS[_check_stage(stage)] + [STATUS_COLUMN]


def _check_stage(stage: str) -> str:
    if stage not in STAGES:
        raise ReviewkitError(f"unknown screening stage {stage!r}; stages: {', '.join(STAGES)}")
    return stage


# --- automatic suggestions -------------------------------------------------

_REVIEW_TYPES = {"Review", "Systematic Review", "Meta-Analysis", "Scoping Review"}
_OPINION_TYPES = {"Editorial", "Comment", "Letter", "News", "Newspaper Article"}


def suggest(record: pd.Series, intervention_terms: tuple[str, ...]) -> tuple[str, str]:
    """A hint for the screener, ``(suggestion, reason)``; never a decision.

    ``exclude`` for animal-only records (MeSH Animals without Humans), reviews
    and editorials (publication type), or no intervention term in title or
    abstract; ``check`` for case reports (a case series is eligible, a
    single-patient report is not); ``""`` when nothing stands out.
    """
    types = set(record.get("publication_types") or [])
    text = f"{record.get('title') or ''} {record.get('abstract') or ''}".lower()
    if record.get("is_animal") and not record.get("is_human"):
        return "exclude", "animal-only (MeSH Animals without Humans)"
    if types & _REVIEW_TYPES:
        return "exclude", f"review (publication type: {', '.join(sorted(types & _REVIEW_TYPES))})"
    if types & _OPINION_TYPES:
        return "exclude", f"editorial, comment or letter (publication type: {', '.join(sorted(types & _OPINION_TYPES))})"
    if not any(term.lower() in text for term in intervention_terms):
        return "exclude", f"no {' or '.join(intervention_terms)} in title or abstract"
    if "Case Reports" in types:
        return "check", "case report (publication type): single patient or series?"
    return "", ""


def _text(value) -> str:
    if isinstance(value, (list, tuple)):
        return "; ".join(str(v) for v in value)
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(value)


def build_sheet(candidates: pd.DataFrame, stage: str, intervention_terms: tuple[str, ...]) -> pd.DataFrame:
    """A blank sheet for ``candidates`` (records-table rows): info columns filled,
    decision columns empty; ``intervention_terms`` (the protocol's free-text intervention terms)
    feed the suggestions."""
    _check_stage(stage)
    records = candidates.to_dict("records")  # plain dicts: a Series per row costs ~0.1 ms, minutes at scale
    sheet = pd.DataFrame({c: [_text(rec.get(c)) for rec in records] for c in INFO_COLUMNS[:-2]},
                         columns=INFO_COLUMNS, dtype=object)
    hints = [suggest(rec, intervention_terms) for rec in records]
    sheet["suggestion"] = [h[0] for h in hints]
    sheet["suggestion_reason"] = [h[1] for h in hints]
    for c in [PRIORITY_COLUMN] + HUMAN_COLUMNS[stage] + [STATUS_COLUMN]:
        sheet[c] = ""
    return sheet[sheet_columns(stage)].astype(object)


def person_columns(sheet: pd.DataFrame, stage: str) -> list[str]:
    """Columns a person added to the sheet (e.g. ``my_tags``), in the sheet's order: kept, never filled in."""
    own = set(sheet_columns(stage))
    return [c for c in sheet.columns if c not in own]


@dataclass(frozen=True)
class SheetSource:
    """What a stage's files held when they were read, for the compare-before-write check.

    ``fingerprint``: sha256 of the CSV and of the XLSX (None: no such file); ``entries``: the
    record ids and entry columns (decisions and columns people added) as read, None when there
    was no sheet; ``reasons``: the protocol's exclusion reasons the sheet was checked against.
    """

    fingerprint: tuple[str | None, str | None]
    entries: pd.DataFrame | None
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class SheetUpdate:
    """``sheet``: the updated sheet; ``new_ids``: records added unscreened;
    ``kept_ids``: rows with a human entry whose record is no longer a candidate;
    ``source``: what the files held when read (None: not read from files)."""

    sheet: pd.DataFrame
    new_ids: tuple[str, ...]
    kept_ids: tuple[str, ...]
    source: SheetSource | None = None


def update_sheet(existing: pd.DataFrame | None, fresh: pd.DataFrame, stage: str) -> SheetUpdate:
    """Carry every human entry of ``existing`` onto ``fresh`` (a :func:`build_sheet`).

    Row order is the existing order, new records after it. Rows that left the
    candidates are kept when they hold a human entry (a decision column or a
    column a person added), else dropped. Columns a person added are kept,
    after reviewkit's own, blank on new rows.
    """
    human = HUMAN_COLUMNS[_check_stage(stage)]
    if existing is None:
        return SheetUpdate(fresh.reset_index(drop=True), tuple(fresh["record_id"]), ())
    added = person_columns(existing, stage)
    entries = human + added
    old = existing.reset_index(drop=True)
    retrieved = old["record_id"].isin(fresh["record_id"]).to_numpy()
    has_entry = old[entries].fillna("").astype(str).ne("").any(axis=1).to_numpy()
    rows = old[retrieved | has_entry].reset_index(drop=True).astype(object)
    found = pd.Series(retrieved[retrieved | has_entry])
    # One join for all rows: the info columns are reviewkit's, refreshed from this
    # run's records; a row no longer retrieved keeps what it had.
    info = INFO_COLUMNS[1:]
    refreshed = rows[["record_id"]].merge(fresh[["record_id", *info]], on="record_id", how="left",
                                          validate="one_to_one")
    for c in info:
        rows[c] = refreshed[c].where(found, rows[c] if c in rows else "")
    rows[STATUS_COLUMN] = found.map({True: "", False: NO_LONGER_RETRIEVED})
    new = fresh[~fresh["record_id"].isin(old["record_id"])]
    sheet = pd.concat([rows, new], ignore_index=True).reindex(columns=sheet_columns(stage) + added)
    sheet = sheet.astype(object).fillna("")
    kept = rows.loc[~found, "record_id"]
    return SheetUpdate(sheet, tuple(new["record_id"]), tuple(kept))


# --- validation -------------------------------------------------------------

def validate_sheet(sheet: pd.DataFrame, stage: str, reasons: tuple[str, ...], where: str) -> pd.DataFrame:
    """Check and normalise a sheet read from ``where``; errors name the file and row.

    Normalising only changes case and surrounding spaces of decision words and
    spells a reason as the protocol does; anything else is an error, so a
    decision is never reinterpreted.
    """
    human = HUMAN_COLUMNS[_check_stage(stage)]
    missing = [c for c in ["record_id"] + human if c not in sheet.columns]
    if missing:
        raise ReviewkitError(f"{where}: missing column(s) {', '.join(missing)}")
    sheet = sheet.copy()
    for c in sheet_columns(stage):
        sheet[c] = _texts(sheet[c], strip=True) if c in sheet.columns else ""
    added = person_columns(sheet, stage)
    for c in added:
        sheet[c] = _texts(sheet[c], strip=False)
    sheet = sheet[sheet_columns(stage) + added].astype(object)
    normalised = _normalised(sheet, stage, reasons)
    if normalised is not None:
        return normalised
    # Something is wrong: the row-by-row check below finds the first problem and names its row.
    by_lower = {r.lower(): r for r in reasons}
    seen: dict[str, int] = {}
    for pos, row in enumerate(sheet.itertuples(index=False)):
        line = pos + 2  # spreadsheet row: the header is row 1
        at = f"{where}, row {line}"
        rid = row.record_id
        if not rid:
            raise ReviewkitError(f"{at}: record_id is empty")
        if rid in seen:
            raise ReviewkitError(f"{at}: record {excerpt(rid, quoted=False)} appears again (first at row {seen[rid]})")
        seen[rid] = line
        for col, allowed in OWN_VALUES.items():
            typed = getattr(row, col)
            if typed not in allowed and not (col == PRIORITY_COLUMN and _PRIORITY.fullmatch(typed)):
                raise ReviewkitError(f"{at}, column {col}: {excerpt(typed)} was typed into a column reviewkit writes "
                                     "and would be lost; move it to notes (or a column of your own) and clear it")
        for col in DECISION_COLUMNS:
            value = getattr(row, col).lower()
            if value and value not in DECISIONS:
                raise ReviewkitError(f"{at}, column {col}: {excerpt(getattr(row, col))} is not a decision "
                                     f"(use {' or '.join(DECISIONS)}, or leave blank)")
            sheet.iat[pos, sheet.columns.get_loc(col)] = value
        reason = row.exclusion_reason
        if reason:
            if reason.lower() not in by_lower:
                raise ReviewkitError(f"{at}, column exclusion_reason: {excerpt(reason)} is not a {STAGE_LABELS[stage]} "
                                     f"reason in the protocol ({'; '.join(reasons)})")
            sheet.iat[pos, sheet.columns.get_loc("exclusion_reason")] = by_lower[reason.lower()]
        final = sheet.iat[pos, sheet.columns.get_loc("final")]
        if reason and final == "include":
            raise ReviewkitError(f"{at}: exclusion reason {reason!r} given for a record whose final decision is include")
        if stage == "full_text":
            retrieved = row.retrieved.lower()
            if retrieved and retrieved not in RETRIEVED:
                raise ReviewkitError(f"{at}, column retrieved: {excerpt(row.retrieved)} is not yes or no")
            sheet.iat[pos, sheet.columns.get_loc("retrieved")] = retrieved
            if retrieved == "no" and final:
                raise ReviewkitError(f"{at}: a report marked not retrieved cannot have a final decision")
            if final == "exclude" and not reason:
                raise ReviewkitError(f"{at}: a full-text exclusion needs a reason from the protocol list "
                                     f"({'; '.join(reasons)})")
    return sheet


def _texts(column: pd.Series, strip: bool) -> pd.Series:
    """A column's cells as text (:func:`_text`), whole columns at once when they are text already."""
    column = column.astype(object)  # Python's str methods, whatever the dtype (pyarrow strips other spaces)
    if pd.api.types.infer_dtype(column, skipna=False) == "string":
        return column.str.strip() if strip else column
    return column.map((lambda v: _text(v).strip()) if strip else _text)


def _normalised(sheet: pd.DataFrame, stage: str, reasons: tuple[str, ...]) -> pd.DataFrame | None:
    """:func:`validate_sheet`'s checks and normalisation on whole columns (100,000 rows in well under a
    second, where the row loop took half a minute); None when any row breaks a rule, for the row loop
    to name the first.

    Parameters
    ----------
    sheet : pandas.DataFrame
        A sheet of text cells, the stage's columns in order.
    stage : str
        ``title_abstract`` or ``full_text``.
    reasons : tuple of str
        The protocol's exclusion reasons for the stage.

    Returns
    -------
    pandas.DataFrame or None
        The sheet with decisions lower case and reasons spelled as the protocol does, or None.
    """
    ids = sheet["record_id"]
    if (ids == "").any() or ids.duplicated().any():
        return None
    for col, allowed in OWN_VALUES.items():
        ok = sheet[col].isin(allowed)
        if col == PRIORITY_COLUMN:
            ok |= sheet[col].str.fullmatch(_PRIORITY.pattern).astype(bool)
        if not ok.all():
            return None
    out = {}
    for col in DECISION_COLUMNS:
        out[col] = sheet[col].str.lower()
        if not out[col].isin(("", *DECISIONS)).all():
            return None
    reason = sheet["exclusion_reason"]
    by_lower = {r.lower(): r for r in reasons}
    lower = reason.str.lower()
    if not ((reason == "") | lower.isin(list(by_lower))).all():
        return None
    out["exclusion_reason"] = lower.map(by_lower).where(reason != "", "")
    if ((reason != "") & (out["final"] == "include")).any():
        return None
    if stage == "full_text":
        out["retrieved"] = sheet["retrieved"].str.lower()
        if not out["retrieved"].isin(("", *RETRIEVED)).all():
            return None
        if ((out["retrieved"] == "no") & (out["final"] != "")).any() or \
                ((out["final"] == "exclude") & (reason == "")).any():
            return None
    return sheet.assign(**out).astype(object)


# --- files --------------------------------------------------------------------

def sheet_paths(folder: str | Path, stage: str) -> tuple[Path, Path]:
    """The stage's CSV and XLSX, refused if either is a symbolic link."""
    _check_stage(stage)
    return (contained(folder, f"{stage}.csv", what="screening folder"),
            contained(folder, f"{stage}.xlsx", what="screening folder"))


def _read_file(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return read_csv(path, "screening sheet")
    return read_xlsx(path, "screening sheet")


def _fingerprint(paths: tuple[Path, Path]) -> tuple[str | None, str | None]:
    def digest(path: Path) -> str | None:
        try:
            return hashlib.sha256(read_bytes(path)).hexdigest()
        except FileNotFoundError:
            return None

    csv_digest, xlsx_digest = (digest(p) for p in paths)
    return csv_digest, xlsx_digest


def load_sheet(folder: str | Path, stage: str, reasons: tuple[str, ...]) -> tuple[pd.DataFrame | None, SheetSource]:
    """The stage's sheet from ``folder`` (None when neither file exists) and what its files held.

    People may edit the CSV or the XLSX. Both are read: an entry present in
    one and blank in the other is taken; two different entries for the same
    cell are an error naming both files, so neither edit is lost.
    """
    paths = sheet_paths(folder, stage)
    # Fingerprint, read, fingerprint again: a file saved while being read is read again.
    for _ in range(3):
        before = _fingerprint(paths)
        sheet = _combine(stage, reasons, paths)
        if _fingerprint(paths) == before:
            entries = None if sheet is None else sheet[["record_id", *_entry_columns(sheet, stage)]].copy()
            return sheet, SheetSource(before, entries, tuple(reasons))
    raise ReviewkitError(f"{paths[0].parent}: the {STAGE_LABELS[stage]} sheet kept changing while it was read; "
                         "save it, wait a moment and run again")


def read_sheet(folder: str | Path, stage: str, reasons: tuple[str, ...]) -> pd.DataFrame | None:
    """The stage's sheet from ``folder`` (None when neither file exists); see :func:`load_sheet`."""
    return load_sheet(folder, stage, reasons)[0]


def _entry_columns(sheet: pd.DataFrame, stage: str) -> list[str]:
    return HUMAN_COLUMNS[stage] + person_columns(sheet, stage)


def _combine(stage: str, reasons: tuple[str, ...], paths: tuple[Path, Path]) -> pd.DataFrame | None:
    sheets = [(p, validate_sheet(_read_file(p), stage, reasons, str(p))) for p in paths if p.exists()]
    if not sheets:
        return None
    if len(sheets) == 1:
        return sheets[0][1]
    (p_a, a), (p_b, b) = sheets
    entries = HUMAN_COLUMNS[stage] + list(dict.fromkeys(person_columns(a, stage) + person_columns(b, stage)))
    combined = a.reindex(columns=sheet_columns(stage) + entries[len(HUMAN_COLUMNS[stage]):], fill_value="")
    # Whole columns at once: both files' entries for the CSV's rows, aligned by record id.
    mine = combined[entries].to_numpy(dtype=object)
    theirs = b.set_index("record_id").reindex(index=combined["record_id"], columns=entries,
                                              fill_value="").to_numpy(dtype=object)
    clash = (mine != "") & (theirs != "") & (mine != theirs)
    if clash.any():
        row, col = np.argwhere(clash)[0]  # the first in reading order
        raise ReviewkitError(f"record {excerpt(combined.at[row, 'record_id'], quoted=False)}, column "
                             f"{excerpt(entries[col], quoted=False)}: "
                             f"{p_a.name} says {excerpt(mine[row, col])} but {p_b.name} says "
                             f"{excerpt(theirs[row, col])}; make them agree (or clear one) and rerun")
    combined[entries] = np.where(mine == "", theirs, mine)
    extra = b[~b["record_id"].isin(set(a["record_id"]))]
    combined = pd.concat([combined, extra], ignore_index=True)
    return validate_sheet(combined, stage, reasons, f"{p_a} + {p_b.name}")


def merge_entries(base: pd.DataFrame | None, ours: pd.DataFrame, theirs: pd.DataFrame, stage: str,
                  where: str) -> pd.DataFrame:
    """``ours`` (the sheet reviewkit is about to write) with the entries someone saved meanwhile.

    ``base`` holds the entries as reviewkit read them, ``theirs`` the sheet now on disk. Per
    entry cell (decisions and columns people added): what only one side changed since ``base``
    is taken; a cell both changed to different values is a ``ReviewkitError`` (nothing is
    written). A row someone deleted meanwhile keeps reviewkit's entries; a row with entries
    that reviewkit no longer lists is kept, marked no longer retrieved.
    """
    columns = list(dict.fromkeys(_entry_columns(ours, stage) + _entry_columns(theirs, stage)))
    if base is None:
        base = pd.DataFrame(columns=["record_id", *columns])
    ids = ours["record_id"]
    mine = ours.reindex(columns=columns, fill_value="").to_numpy(dtype=object)
    present = ids.isin(set(theirs["record_id"])).to_numpy()[:, None]
    now = theirs.set_index("record_id").reindex(index=ids, columns=columns, fill_value="").to_numpy(dtype=object)
    now = np.where(present, now, mine)
    was = base.set_index("record_id").reindex(index=ids, columns=columns, fill_value="").to_numpy(dtype=object)
    clash = (now != was) & (mine != was) & (mine != now)
    if clash.any():
        row, col = np.argwhere(clash)[0]
        raise ReviewkitError(
            f"{where}: record {excerpt(ids.iloc[row], quoted=False)}, column {excerpt(columns[col], quoted=False)} "
            f"was changed to "
            f"{excerpt(now[row, col])} while reviewkit was updating it to {excerpt(mine[row, col])}; nothing was "
            "written: make the entry you want, save, and run again")
    own = sheet_columns(stage)
    merged = ours.reindex(columns=own + [c for c in columns if c not in own], fill_value="").astype(object)
    merged[columns] = np.where(now != was, now, mine)
    extra = theirs[~theirs["record_id"].isin(set(ids))]
    extra = extra[extra.reindex(columns=columns, fill_value="").ne("").any(axis=1)]
    if not extra.empty:
        extra = extra.assign(**{STATUS_COLUMN: NO_LONGER_RETRIEVED})
        merged = pd.concat([merged, extra.reindex(columns=merged.columns, fill_value="")], ignore_index=True)
    return merged.astype(object).fillna("")


def write_sheet(folder: str | Path, stage: str, sheet: pd.DataFrame, source: SheetSource | None = None) -> bool:
    """Write CSV and XLSX atomically; returns False (and writes nothing) when the files already hold
    exactly this sheet.

    With ``source`` (what the files held when the sheet was read), the write holds the folder's lock
    and the files are compared with it first: if someone saved since, their entries are merged in (:func:`merge_entries`) and a
    warning says so; if they cannot be, or the files can no longer be read, nothing is written.
    """
    return _write(folder, stage, sheet, source)[0]


def save_sheet(folder: str | Path, stage: str, sheet: pd.DataFrame, source: SheetSource, *,
               xlsx: bool = True) -> tuple[pd.DataFrame, SheetSource]:
    """:func:`write_sheet` for a program that goes on writing (the screening app): the same lock,
    compare-before-write and merge, and it returns the sheet as written (with entries someone saved
    meanwhile merged in) and what the files hold now, for the next write to compare with.

    The new fingerprint is that of the bytes this call wrote, so a save by someone a moment after
    it is still seen (and merged) by the next write.

    ``xlsx`` False writes the CSV alone (an XLSX is slower to write: about half a second for two thousand
    records), which is safe only while the XLSX is blank in every entry cell the CSV differs in, as
    sheets are read (:func:`load_sheet`: a cell filled in one file and blank in the other is taken).
    The caller keeps that promise; the XLSX is written anyway when there is none, and when someone
    saved either file since ``source`` (their entries are merged into both).
    """
    changed, written, fingerprint = _write(folder, stage, sheet, source, xlsx=xlsx)
    entries = written[["record_id", *_entry_columns(written, stage)]].copy()
    return written, SheetSource(fingerprint, entries, source.reasons)


def _write(folder: str | Path, stage: str, sheet: pd.DataFrame, source: SheetSource | None,
           xlsx: bool = True) -> tuple[bool, pd.DataFrame, tuple[str | None, str | None]]:
    folder = Path(folder)
    csv_path, xlsx_path = sheet_paths(folder, stage)
    remove_stale_temporaries(folder)
    # The lock guards the files a sheet was read from; a copy written elsewhere (an export) needs none.
    guard = locked(contained(folder, LOCK_FILE, what="screening folder")) if source is not None else nullcontext()
    with guard:
        now = _fingerprint((csv_path, xlsx_path))
        if source is not None and now != source.fingerprint:
            xlsx = True  # someone saved: both files get the merged entries
            theirs = read_sheet(folder, stage, source.reasons)
            if theirs is not None:
                sheet = merge_entries(source.entries, sheet, theirs, stage, str(csv_path))
                log.warning("%s: saved by someone while reviewkit was working; their entries are kept and "
                            "merged with reviewkit's (run again to bring them into this run's counts)", csv_path)
        columns = sheet_columns(stage) + person_columns(sheet, stage)
        table = sheet[columns].reset_index(drop=True)
        text = csv_text(table)
        csv_digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if not xlsx and now[1] is not None:  # the CSV alone (see save_sheet)
            if now[0] == csv_digest:
                return False, table, now
            atomic_write_text(csv_path, text)
            return True, table, (csv_digest, now[1])
        if csv_path.exists() and xlsx_path.exists() and read_bytes(csv_path) == text.encode("utf-8"):
            on_disk = _read_file(xlsx_path).reindex(columns=columns, fill_value="")
            if on_disk.astype(str).equals(table.astype(str)):
                return False, table, _fingerprint((csv_path, xlsx_path))
        # Priorities as numbers in the workbook, so a spreadsheet sorts 2 before 10 (read back as text).
        numbers = table.assign(**{PRIORITY_COLUMN: [int(v) if v else "" for v in table[PRIORITY_COLUMN]]})
        data = xlsx_bytes(numbers, stage, widths=[16, 18, 60, 40, 30, 24, 6, 20, 14, 10, 30, 8] + [12] * 12,
                          freeze="B2")
        # CSV first: a crash between the two writes leaves an XLSX whose entries
        # are a subset of the CSV's, which read_sheet combines without loss.
        atomic_write_text(csv_path, text)
        atomic_write_bytes(xlsx_path, data)
    return True, table, (csv_digest, hashlib.sha256(data).hexdigest())


# --- decisions from another file ----------------------------------------------

def import_decisions(sheet: pd.DataFrame, decisions: pd.DataFrame, stage: str, reasons: tuple[str, ...],
                     where: str) -> pd.DataFrame:
    """Fill blank cells of ``sheet`` from a decisions file keyed by record id
    (e.g. a second reviewer's copy). An unknown or duplicated id, an invalid
    value, or a value that differs from one already in the sheet is an error
    naming the file and row; the sheet is returned changed only when all rows pass."""
    human = HUMAN_COLUMNS[stage]
    present = [c for c in human if c in decisions.columns]
    padded = decisions.reindex(columns=["record_id"] + human, fill_value="")
    checked = validate_sheet(padded.assign(**{c: "" for c in human if c not in present}), stage, reasons, where)
    out = sheet.copy()
    index = {rid: pos for pos, rid in enumerate(out["record_id"])}
    for pos, row in checked.iterrows():
        at = f"{where}, row {pos + 2}"
        if row["record_id"] not in index:
            raise ReviewkitError(f"{at}: record {row['record_id']} is not in the {STAGE_LABELS[stage]} sheet")
        target = index[row["record_id"]]
        for col in present:
            new, old = row[col], out.iat[target, out.columns.get_loc(col)]
            if new and old and new != old:
                raise ReviewkitError(f"{at}, column {col}: {new!r} would replace {old!r} already recorded "
                                     f"for {row['record_id']}")
            if new:
                out.iat[target, out.columns.get_loc(col)] = new
    return validate_sheet(out, stage, reasons, where)


# --- agreement ------------------------------------------------------------------

@dataclass(frozen=True)
class Agreement:
    """Dual screening at one stage: records both reviewers decided, how many
    they agreed on, and Cohen's kappa (None when undefined: fewer than one
    pair, or chance agreement is 1)."""

    stage: str
    n_both: int
    n_agree: int
    kappa: float | None


def cohen_kappa(a: list[str], b: list[str]) -> float | None:
    """Cohen's kappa for two raters' labels, (p_o - p_e) / (1 - p_e)."""
    if len(a) != len(b):
        raise ValueError("kappa needs two ratings per item")
    n = len(a)
    if n == 0:
        return None
    labels = set(a) | set(b)
    p_o = sum(x == y for x, y in zip(a, b)) / n
    p_e = sum((a.count(k) / n) * (b.count(k) / n) for k in labels)
    return None if p_e == 1 else (p_o - p_e) / (1 - p_e)


def agreement(sheet: pd.DataFrame, stage: str) -> Agreement:
    both = sheet[(sheet["reviewer1"] != "") & (sheet["reviewer2"] != "")]
    r1, r2 = both["reviewer1"].tolist(), both["reviewer2"].tolist()
    return Agreement(stage, len(both), sum(x == y for x, y in zip(r1, r2)), cohen_kappa(r1, r2))


def conflicts(sheet: pd.DataFrame) -> pd.DataFrame:
    """Rows where the two reviewers disagree, with the final decision if made."""
    mask = (sheet["reviewer1"] != "") & (sheet["reviewer2"] != "") & (sheet["reviewer1"] != sheet["reviewer2"])
    return sheet.loc[mask, ["record_id", "title", "reviewer1", "reviewer2", "final"]].reset_index(drop=True)
