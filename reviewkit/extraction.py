"""The extraction table: one row per reported outcome comparison of an included study.

``load_extraction(path, protocol)`` reads a project's ``extraction/outcomes.csv`` (schema in
the worked example's ``data/extraction/README.md``), checks it (a row's ``disorder`` is one of the
protocol's search keys), and returns a DataFrame with numbers as numbers and
empty cells as missing. ``analysis_rows(df, pool_group)`` picks
the rows of one pre-specified analysis. Every problem raises
``ExtractionError`` naming the file, the row and the column.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .effects import REPORTED_MEASURES, EffectSizeError, check_row, data_kind
from .errors import ReviewkitError
from .protocol import Protocol

# Study designs, as the extraction and the table of included studies name them.
DESIGNS = ("rct", "crossover_rct", "nonrandomized_controlled", "retrospective_cohort", "prospective_cohort",
           "open_label", "case_series", "case_report")
# Designs whose outcome rows carry a comparison to extract (single-arm designs describe, not compare).
COMPARATIVE_DESIGNS = ("rct", "crossover_rct", "nonrandomized_controlled", "retrospective_cohort",
                       "prospective_cohort")
OUTCOME_TYPES = ("binary", "continuous", "time_to_event")

TEXT_COLUMNS = (
    "row_id", "study", "participants", "pmid", "doi", "journal", "disorder", "design", "intervention",
    "comparator", "outcome", "outcome_short", "timepoint", "outcome_type", "favourable", "measure",
    "reported", "pool_group", "not_pooled_reason", "source", "source_url",
)
COUNT_COLUMNS = ("events_t", "n_t", "events_c", "n_c")
REAL_COLUMNS = ("pct_t", "pct_c", "mean_t", "sd_t", "mean_c", "sd_c", "estimate", "ci_low", "ci_high")
BOOL_COLUMNS = ("secondary_source",)
COLUMNS = TEXT_COLUMNS + COUNT_COLUMNS + REAL_COLUMNS + BOOL_COLUMNS
# A source so described is not the paper itself; such rows carry secondary_source = true.
SECONDARY_WORDS = ("news", "secondary", "blog", "review", "summary")


class ExtractionError(ReviewkitError):
    """The extraction table is malformed or holds impossible numbers."""


def load_extraction(path: str | Path, protocol: Protocol) -> pd.DataFrame:
    """Read and validate the extraction CSV; returns typed columns (Int64, float, bool, str/None).

    ``protocol`` gives the disorders a row may name: its search keys.
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError) as exc:
        raise ExtractionError(f"{path}: cannot read the extraction table ({exc})") from None
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise ExtractionError(f"{path}: missing column(s) {', '.join(missing)}")
    df = pd.DataFrame(index=raw.index)
    for col in TEXT_COLUMNS:
        # object dtype so that an empty cell is None (pandas' str dtype would make it NaN)
        df[col] = pd.Series([text.strip() or None for text in raw[col]], index=raw.index, dtype=object)
    for col in COUNT_COLUMNS + REAL_COLUMNS:
        df[col] = [_number(path, i, col, text, col in COUNT_COLUMNS) for i, text in raw[col].items()]
        df[col] = df[col].astype("Int64" if col in COUNT_COLUMNS else float)
    for col in BOOL_COLUMNS:
        df[col] = [_boolean(path, i, col, text) for i, text in raw[col].items()]
    validate_extraction(df, tuple(protocol.searches), where=str(path), raw=raw, protocol_path=protocol.path)
    return df


def _number(path: Path, i: int, col: str, text: str, integer: bool):
    text = text.strip()
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ExtractionError(f"{path}, row {i + 2}, column {col!r}: {text!r} is not a number") from None
    if integer and value != int(value):
        raise ExtractionError(f"{path}, row {i + 2}, column {col!r}: {text!r} must be a whole number")
    return int(value) if integer else value


def _boolean(path: Path, i: int, col: str, text: str) -> bool:
    text = text.strip().lower()
    if text not in ("true", "false"):
        raise ExtractionError(f"{path}, row {i + 2}, column {col!r}: {text!r} must be true or false")
    return text == "true"


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def validate_extraction(df: pd.DataFrame, disorders: Sequence[str], where: str = "extraction table",
                        raw: pd.DataFrame | None = None, protocol_path: Path | None = None) -> None:
    """Raise ExtractionError for the first problem found, naming file, row, study and column.

    ``disorders``: the values column ``disorder`` may take (the protocol's search keys).
    """
    known = f"the searches of {protocol_path}" if protocol_path else "the protocol's searches"
    for i, row in df.iterrows():
        at = f"{where}, row {i + 2} ({row['study']}, {row['row_id']})"

        def fail(col: str, why: str, at: str = at) -> ExtractionError:
            return ExtractionError(f"{at}, column {col!r}: {why}")

        for col in ("row_id", "study", "participants", "disorder", "design", "outcome", "outcome_type",
                    "favourable", "source"):
            if row[col] is None:
                raise fail(col, "must not be empty")
        if row["disorder"] not in disorders:
            raise fail("disorder", f"{row['disorder']!r} is not one of {', '.join(disorders)} ({known})")
        if row["design"] not in COMPARATIVE_DESIGNS:
            raise fail("design", f"{row['design']!r} is not one of {', '.join(COMPARATIVE_DESIGNS)}")
        if row["outcome_type"] not in OUTCOME_TYPES:
            raise fail("outcome_type", f"{row['outcome_type']!r} is not one of {', '.join(OUTCOME_TYPES)}")
        if row["favourable"] not in ("higher", "lower"):
            raise fail("favourable", f"{row['favourable']!r} must be 'higher' or 'lower'")
        if row["measure"] is not None and row["measure"] not in REPORTED_MEASURES:
            raise fail("measure", f"{row['measure']!r} is not one of {', '.join(REPORTED_MEASURES)}")
        if row["pmid"] is not None and not row["pmid"].isdigit():
            raise fail("pmid", f"{row['pmid']!r} is not a PubMed ID")
        try:
            check_row(row)
        except EffectSizeError as exc:
            raise ExtractionError(f"{where}, row {i + 2}: {exc}") from None
        if row["pool_group"] is None and row["not_pooled_reason"] is None:
            raise fail("not_pooled_reason", "a row outside every pool_group must say why")
        if row["pool_group"] is not None:
            if data_kind(row) is None:
                raise fail("pool_group", "a pooled row needs 2x2 counts, means/SDs or an estimate with CI")
            if row["measure"] is None:
                raise fail("measure", "a pooled row needs the measure it is analysed on")
        words = str(row["source"]).lower()
        if row["secondary_source"] and not any(w in words for w in SECONDARY_WORDS):
            raise fail("source", "secondary_source is true, so the source must name the summary it comes from")
        for arm in ("t", "c"):
            pct = row[f"pct_{arm}"]
            if pd.isna(pct):
                continue
            events, n = row[f"events_{arm}"], row[f"n_{arm}"]
            if pd.isna(events) or pd.isna(n):
                raise fail(f"pct_{arm}", "a reported percentage is kept only to check events derived from it")
            places = _decimals(raw.at[i, f"pct_{arm}"].strip()) if raw is not None else 1
            # One unit of the last printed digit, not half: sources round twice
            # (13/27 = 48.148 -> 48.15 -> "48.2%"). The derived count must also
            # be the only whole number that close, or it is a guess.
            unit = 10.0**-places
            fits = [e for e in range(int(n) + 1) if abs(100 * e / n - pct) <= unit + 1e-9]
            if fits != [events]:
                raise fail(
                    f"events_{arm}",
                    f"{events}/{n} = {100 * events / n:.2f}% is not the one count that gives the reported {pct}% "
                    f"(counts within {unit:g} points: {fits or 'none'})",
                )

    duplicated = df["row_id"][df["row_id"].duplicated()]
    if not duplicated.empty:
        raise ExtractionError(f"{where}: row_id {duplicated.iloc[0]!r} appears more than once")
    pooled = df[df["pool_group"].notna()]
    twice = pooled[pooled.duplicated(["pool_group", "participants"], keep=False)]
    if not twice.empty:
        first = twice.iloc[0]
        raise ExtractionError(
            f"{where}: participants {first['participants']!r} enter pool_group {first['pool_group']!r} more than "
            f"once (rows {', '.join(twice['row_id'])}); pick one comparison per set of participants"
        )
    for group, rows in pooled.groupby("pool_group"):
        if rows["measure"].nunique() != 1:
            raise ExtractionError(f"{where}: pool_group {group!r} mixes measures {sorted(set(rows['measure']))}")


def analysis_rows(df: pd.DataFrame, pool_group: str) -> pd.DataFrame:
    """The rows of one pre-specified analysis (column ``pool_group``), in table order."""
    rows = df[df["pool_group"] == pool_group]
    if rows.empty:
        groups = sorted(g for g in df["pool_group"].dropna().unique())
        raise ExtractionError(f"no rows in pool_group {pool_group!r}; groups in the table: {', '.join(groups) or 'none'}")
    return rows


def pool_measure(rows: pd.DataFrame) -> str:
    """The measure the rows of one pool_group are analysed on (the table guarantees there is one)."""
    measures = rows["measure"].dropna().unique()
    if len(measures) != 1:
        raise ExtractionError(f"rows {', '.join(rows['row_id'])} do not share one measure")
    return str(measures[0])
