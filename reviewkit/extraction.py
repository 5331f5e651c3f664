"""The extraction table: one row per reported outcome comparison (or single arm) of an included study.

``load_extraction(path, protocol, studies=None)`` reads a project's
``extraction/outcomes.csv`` and checks it. Each row says what was measured and
how the source gives it:

* the study (``study_id``, the screening's study id) and its ``disorder`` (a
  protocol search);
* the **outcome domain** (a key of the protocol's ``outcomes``), the outcome as
  reported, its time point, type (``binary``, ``continuous``, ``time_to_event``)
  and whether ``higher`` or ``lower`` is better;
* the **comparator type** (one of the protocol's comparisons' comparators, or
  ``other`` for a comparison no synthesis takes) and the two arms' labels;
* randomized (``randomized_t/_c``) and analysed (``n_t/_c``) participants per arm;
* the numbers in whichever form the source gives them: 2x2 counts; means and
  SDs; an estimate (``measure``: OR, RR, RD, MD, SMD, HR, ROM) with a CI, an SE or a
  p-value; a single arm's ``events, n``; one group's means before and after
  (``mean_pre``, ``mean_post`` with their SDs: shown, not pooled); or none (then
  ``reported`` and ``reported_direction`` say what the source found);
* the **source kind** (``full text``, ``abstract``, ``registry results``,
  ``secondary summary``), where in it the numbers stand, and how any number was
  ``derivation``; ``indirectness`` names a population or outcome that differs from
  the review question.

``pooled`` says which rows the syntheses use: at most one row per study,
disorder, domain, comparison and measure. Every problem raises
``ExtractionError`` naming the file, the row, the study and the column.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .effects import MEASURES, EffectSizeError, check_row, data_kind
from .errors import ReviewkitError
from .protocol import Protocol

# Study designs, as the extraction and the table of included studies name them.
RANDOMIZED = ("rct", "crossover_rct")
NON_RANDOMIZED = ("nonrandomized_controlled", "retrospective_cohort", "prospective_cohort")
UNCONTROLLED = ("open_label", "case_series", "case_report")
DESIGNS = RANDOMIZED + NON_RANDOMIZED + UNCONTROLLED
DESIGN_LABELS = {
    "rct": "RCT", "crossover_rct": "crossover RCT", "nonrandomized_controlled": "non-randomized controlled",
    "retrospective_cohort": "retrospective cohort", "prospective_cohort": "prospective cohort",
    "open_label": "open-label", "case_series": "case series", "case_report": "case report",
}
OUTCOME_TYPES = ("binary", "continuous", "time_to_event")
SOURCE_KINDS = ("full text", "abstract", "registry results", "secondary summary")
DIRECTIONS = ("favours intervention", "no difference", "favours comparator")
# A comparator type no synthesis takes (e.g. two psychotherapies both given with the intervention).
OTHER_COMPARATOR = "other"

TEXT_COLUMNS = (
    "row_id", "study_id", "study", "disorder", "outcome_domain", "outcome", "outcome_short", "timepoint",
    "outcome_type", "favourable", "comparator_type", "intervention", "comparator", "measure", "reported",
    "reported_direction", "pooled", "not_pooled_reason", "source_kind", "source", "location", "source_url",
    "derivation", "indirectness",
)
COUNT_COLUMNS = ("randomized_t", "randomized_c", "n_t", "n_c", "events_t", "events_c", "events", "n")
# mean_pre/post: one group before and after (recorded as reported; a mean change needs the pre-post
# correlation, which sources rarely give, so such rows are shown, not pooled).
REAL_COLUMNS = ("pct_t", "pct_c", "mean_t", "sd_t", "mean_c", "sd_c", "mean_pre", "sd_pre", "mean_post", "sd_post",
                "estimate", "ci_low", "ci_high", "se", "p_value")
COLUMNS = TEXT_COLUMNS + COUNT_COLUMNS + REAL_COLUMNS
REQUIRED = ("row_id", "study_id", "study", "disorder", "outcome_domain", "outcome", "outcome_type", "favourable",
            "comparator_type", "pooled", "source_kind", "source")
MAX_ROWS = 100_000


class ExtractionError(ReviewkitError):
    """The extraction table is malformed or holds impossible numbers."""


def load_extraction(path: str | Path, protocol: Protocol, studies: pd.DataFrame | None = None) -> pd.DataFrame:
    """Read and validate the extraction CSV; returns typed columns (Int64, float, bool, str/None).

    Parameters
    ----------
    path : path
        The project's ``extraction/outcomes.csv``.
    protocol : Protocol
        Gives what a row may name: disorders (its searches), outcome domains, comparator types.
    studies : DataFrame, optional
        The table of included studies (``reviewkit.evidence.load_studies``); when given, every
        row's ``study_id`` must have a row there.

    Returns
    -------
    DataFrame
        Column ``pooled`` as bool; a column ``comparison`` added (the protocol comparison the
        row's comparator type belongs to, None for ``other``).
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, nrows=MAX_ROWS + 1)
    except FileNotFoundError:
        raise ExtractionError(f"{path}: the extraction table does not exist") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ExtractionError(f"{path}: cannot read the extraction table ({type(exc).__name__})") from None
    if len(raw) > MAX_ROWS:
        raise ExtractionError(f"{path}: more than {MAX_ROWS} rows; is it the right file?")
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
    for i, text in df["pooled"].items():
        if text not in ("yes", "no"):
            raise ExtractionError(f"{path}, row {i + 2}, column 'pooled': {_short(text)} must be yes or no")
    df["pooled"] = df["pooled"] == "yes"
    df["comparison"] = [getattr(protocol.comparison_of(t or ""), "key", None) for t in df["comparator_type"]]
    validate_extraction(df, protocol, where=str(path), raw=raw, studies=studies)
    return df


def _short(value: object, limit: int = 40) -> str:
    text = "" if value is None else str(value)
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _number(path: Path, i: int, col: str, text: str, integer: bool):
    text = text.strip()
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ExtractionError(f"{path}, row {i + 2}, column {col!r}: {_short(text)} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ExtractionError(f"{path}, row {i + 2}, column {col!r}: {_short(text)} is not a finite number")
    if integer and value != int(value):
        raise ExtractionError(f"{path}, row {i + 2}, column {col!r}: {_short(text)} must be a whole number")
    return int(value) if integer else value


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def validate_extraction(df: pd.DataFrame, protocol: Protocol, where: str = "extraction table",
                        raw: pd.DataFrame | None = None, studies: pd.DataFrame | None = None) -> None:
    """Raise ExtractionError for the first problem found, naming file, row, study and column."""
    known_studies = set(studies["study_id"]) if studies is not None else None
    allowed_comparators = (*protocol.comparator_types, OTHER_COMPARATOR)
    for i, row in df.iterrows():
        at = f"{where}, row {i + 2} ({row['study']}, {row['row_id']})"

        def fail(col: str, why: str, at: str = at) -> ExtractionError:
            return ExtractionError(f"{at}, column {col!r}: {why}")

        for col in REQUIRED:
            if row[col] is None:
                raise fail(col, "must not be empty")
        _one_of(row, "disorder", tuple(protocol.searches), fail, f"the searches of {protocol.path.name}")
        _one_of(row, "outcome_domain", tuple(protocol.outcomes), fail, f"the outcomes of {protocol.path.name}")
        _one_of(row, "comparator_type", allowed_comparators, fail, f"the comparisons of {protocol.path.name}")
        _one_of(row, "outcome_type", OUTCOME_TYPES, fail)
        _one_of(row, "favourable", ("higher", "lower"), fail)
        _one_of(row, "source_kind", SOURCE_KINDS, fail)
        if row["reported_direction"] is not None:
            _one_of(row, "reported_direction", DIRECTIONS, fail)
        if row["measure"] is not None:
            _one_of(row, "measure", MEASURES, fail)
        if known_studies is not None and row["study_id"] not in known_studies:
            raise fail("study_id", f"{_short(row['study_id'])} has no row in the table of included studies")
        try:
            check_row(row)
        except EffectSizeError as exc:
            raise ExtractionError(f"{where}, row {i + 2}: {exc}") from None
        for arm in ("t", "c"):
            randomized, analysed = row[f"randomized_{arm}"], row[f"n_{arm}"]
            if pd.notna(randomized) and pd.notna(analysed) and analysed > randomized:
                raise fail(f"n_{arm}", f"{analysed} analysed is more than the {randomized} randomized")
        if row["pooled"]:
            if pd.isna(row["comparison"]):
                raise fail("pooled", f"comparator type {_short(row['comparator_type'])} is in no synthesis")
            if not protocol.outcomes[row["outcome_domain"]].synthesise:
                raise fail("pooled", f"outcome domain {row['outcome_domain']!r} is not synthesised (protocol)")
            if data_kind(row) is None:
                raise fail("pooled", "a pooled row needs 2x2 counts, means and SDs, events/n of one arm, or an "
                                     "estimate with a CI, an SE or a p-value")
            if row["measure"] is None:
                raise fail("measure", "a pooled row needs the measure it is analysed on")
        elif row["not_pooled_reason"] is None:
            raise fail("not_pooled_reason", "a row that is not pooled must say why")
        if data_kind(row) is None and row["reported_direction"] is None:
            raise fail("reported_direction", "a row without usable numbers must say what the source found")
        _check_percentages(row, i, raw, fail)

    duplicated = df["row_id"][df["row_id"].duplicated()]
    if not duplicated.empty:
        raise ExtractionError(f"{where}: row_id {_short(duplicated.iloc[0])} appears more than once")
    pooled = df[df["pooled"]]
    key = ["study_id", "disorder", "outcome_domain", "comparison", "measure"]
    twice = pooled[pooled.duplicated(key, keep=False)]
    if not twice.empty:
        first = twice.iloc[0]
        raise ExtractionError(
            f"{where}: study {first['study']!r} enters the synthesis of {first['disorder']}, "
            f"{first['outcome_domain']}, {first['comparison']} ({first['measure']}) more than once "
            f"(rows {', '.join(twice['row_id'][twice[key].eq(first[key]).all(axis=1)])}); pool one row per study"
        )


def _one_of(row: pd.Series, col: str, allowed: tuple[str, ...], fail, named: str = "") -> None:
    if row[col] not in allowed:
        raise fail(col, f"{_short(row[col])} is not one of {', '.join(allowed)}" + (f" ({named})" if named else ""))


def _check_percentages(row: pd.Series, i: int, raw: pd.DataFrame | None, fail) -> None:
    """Events derived from a reported percentage must be the one count that gives it."""
    for arm in ("t", "c"):
        pct = row[f"pct_{arm}"]
        if pd.isna(pct):
            continue
        events, n = row[f"events_{arm}"], row[f"n_{arm}"]
        if pd.isna(events) or pd.isna(n):
            raise fail(f"pct_{arm}", "a reported percentage is kept only to check events derived from it")
        places = _decimals(str(raw.at[i, f"pct_{arm}"]).strip()) if raw is not None else 1
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


def design_group(design: str | None) -> str:
    """``randomized``, ``non-randomized`` or ``uncontrolled`` (syntheses never mix them); ``unknown``."""
    if design in RANDOMIZED:
        return "randomized"
    if design in NON_RANDOMIZED:
        return "non-randomized"
    if design in UNCONTROLLED:
        return "uncontrolled"
    return "unknown"
