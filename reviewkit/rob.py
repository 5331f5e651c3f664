"""Risk of bias per included study: RoB 2 for randomized trials, ROBINS-I for non-randomized studies.

A review fills in ``extraction/risk_of_bias.csv`` (schema in the worked example's
``data/extraction/README.md``): one row per study, or per study and outcome domain, with one
judgement per domain of the tool, the facts each judgement rests on (``support``) and where
they were read (``source``).

* ``load_risk_of_bias(path, studies)`` reads and checks the file against the table of included
  studies (the tool must fit the study's design) and adds the overall judgement;
* ``overall_judgement(tool, judgements)`` is the tool's overall algorithm;
* ``judgement_for`` / ``judgements_for`` give the certainty-of-evidence (GRADE) step the overall
  judgement of the studies behind a synthesis;
* ``traffic_light(ax, table)`` and ``summary_plot(ax, table)`` draw robvis' two plots on a given
  Axes; ``figure(table)`` lays both out per tool and ``risk_of_bias_figure`` writes PNG and SVG.

What the tools say, and the choices made here
---------------------------------------------
Domains and judgements follow RoB 2 (Sterne et al., BMJ 2019;366:l4898; guidance of
22 August 2019 at riskofbias.info), its variant for crossover trials (Higgins, Li, Sterne,
riskofbias.info, 2021), which adds Domain S, "bias arising from period and carryover effects"
(listed after Domain 1 here), and ROBINS-I (Sterne et al., BMJ 2016;355:i4919, Table 3).
Crossover trials keep the tool name ``RoB 2``; their rows fill column ``DS`` as well, and
parallel-group trials leave it empty (it is "not applicable" for them).

``no information`` is the judgement a domain gets whenever the sources read do not say enough
to judge it: it is never left empty and never guessed. ROBINS-I defines it as a judgement of the
tool. RoB 2 has no such domain judgement (its algorithms turn "no information" answers to the
signalling questions into a domain judgement), so here it means "not assessable from the sources
read", the state of a result assessed from an abstract.

Overall judgement (``overall_judgement``), as the tools define it:

* ROBINS-I, Table 3: critical if any domain is critical; else serious if any is serious; else
  ``no information`` if any domain has none ("no clear indication that the study is at serious
  or critical risk of bias and a lack of information in one or more key domains"); else moderate
  if any is moderate; else low. That is the worst domain under the order
  low < moderate < no information < serious < critical.
* RoB 2 (Sterne 2019 and its guidance on the overall judgement): low only if every domain is
  low; high if any domain is high; some concerns otherwise. A domain with ``no information``
  could be high, so the overall is then ``no information`` unless a domain is already high: the
  order is low < some concerns < no information < high, the same rule as ROBINS-I's.
* RoB 2 also allows "high" for "some concerns in multiple domains in a way that substantially
  lowers confidence in the result". That is a reviewer's judgement, not a count, so the algorithm
  never makes it; a reviewer records it in column ``overall``, which accepts ``high`` when at least
  two domains raise some concerns. Likewise ROBINS-I says the ``no information`` overall needs a
  judgement (only *key* domains count): when the domains without information are judged not to
  be key, ``overall`` accepts the worst of the judged domains. Any other ``overall`` that differs
  from the algorithm is an error, and a reviewer's overall is explained in ``support``
  ("overall: ...").

Colours and symbols are robvis' "cochrane" palette (McGuinness & Higgins, Res Syn Meth
2021;12:55-61; robvis ``get_colour`` and ``rob_traffic_light``): low #02C100 "+", some concerns
and moderate #E2DF07 "-", high and serious #BF0000 "x", critical #820000 "!", no information
#4EA1F7 "?", not applicable #cccccc with no symbol; the overall column on #d3d3d3.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .errors import ReviewkitError
from .figures import save_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

ROB2, ROBINS_I = "RoB 2", "ROBINS-I"
TOOLS = (ROB2, ROBINS_I)
NO_INFORMATION = "no information"
NOT_APPLICABLE = "not applicable"  # only in plots: Domain S of a parallel-group trial
CROSSOVER_DOMAIN = "DS"

# The designs of the table of included studies (studies.csv) that each tool assesses. Single-arm
# designs (open_label, case_series, case_report) compare no interventions: neither tool applies.
TOOL_FOR_DESIGN = {"rct": ROB2, "crossover_rct": ROB2, "nonrandomized_controlled": ROBINS_I,
                   "retrospective_cohort": ROBINS_I, "prospective_cohort": ROBINS_I}
CROSSOVER_DESIGNS = ("crossover_rct",)

# Domains in the order the tools list them (robvis' captions); Domain S only for crossover trials.
DOMAIN_NAMES: dict[str, dict[str, str]] = {
    ROB2: {
        "D1": "Bias arising from the randomization process",
        "DS": "Bias arising from period and carryover effects",
        "D2": "Bias due to deviations from intended interventions",
        "D3": "Bias due to missing outcome data",
        "D4": "Bias in measurement of the outcome",
        "D5": "Bias in selection of the reported result",
    },
    ROBINS_I: {
        "D1": "Bias due to confounding",
        "D2": "Bias due to selection of participants",
        "D3": "Bias in classification of interventions",
        "D4": "Bias due to deviations from intended interventions",
        "D5": "Bias due to missing data",
        "D6": "Bias in measurement of outcomes",
        "D7": "Bias in selection of the reported result",
    },
}
DOMAIN_COLUMNS = ("D1", "D2", "D3", "D4", "D5", "D6", "D7", "DS")
# Judgements from least to most severe; the overall is the most severe (module docstring).
JUDGEMENTS: dict[str, tuple[str, ...]] = {
    ROB2: ("low", "some concerns", NO_INFORMATION, "high"),
    ROBINS_I: ("low", "moderate", NO_INFORMATION, "serious", "critical"),
}
# One scale for both tools, as robvis colours them (the same colour is the same level): what the
# certainty-of-evidence step compares. "no information" has no level (None).
SEVERITY = {"low": 0, "some concerns": 1, "moderate": 1, "high": 2, "serious": 2, "critical": 3}

REQUIRED_COLUMNS = ("study_id", "tool", "overall", "support", "source")
OPTIONAL_COLUMNS = ("study", "outcome_domain")
KNOWN_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS + DOMAIN_COLUMNS
# Columns of the table load_risk_of_bias returns (then any column people added, kept as read).
TABLE_COLUMNS = ("study_id", "study", "design", "outcome_domain", "tool", *DOMAIN_COLUMNS, "overall",
                 "overall_by", "support", "source", "row")
MAX_BYTES = 2 * 1024 * 1024
# A header that reads like a domain ("D8", "d 1", "Domain 2", "DS2") but is none of DOMAIN_COLUMNS.
_DOMAIN_LIKE = re.compile(r"(?i)d\s*(\d+|s)\w?|domain\s*\d+\w?")

COLOURS = {"low": "#02C100", "some concerns": "#E2DF07", "moderate": "#E2DF07", "high": "#BF0000",
           "serious": "#BF0000", "critical": "#820000", NO_INFORMATION: "#4EA1F7", NOT_APPLICABLE: "#cccccc"}
SYMBOLS = {"low": "+", "some concerns": "-", "moderate": "-", "high": "x", "serious": "x", "critical": "!",
           NO_INFORMATION: "?", NOT_APPLICABLE: ""}
OVERALL_BACKGROUND, STRIP, GRID, INK = "#d3d3d3", "#a9a9a9", "#808080", "#1a1a1a"
# Labels of the summary plot's legend, as robvis' rob_summary writes them.
SUMMARY_LABELS = {"low": "Low risk", "some concerns": "Some concerns", "moderate": "Moderate risk",
                  "high": "High risk", "serious": "Serious risk", "critical": "Critical risk",
                  NO_INFORMATION: "No information", NOT_APPLICABLE: "Not applicable"}
SECTION_TITLES = {ROB2: "Randomized trials: RoB 2", ROBINS_I: "Non-randomized studies of interventions: ROBINS-I"}

# Sizes in inches and points at the figure's intended size (every text at least 8 pt).
CELL = 0.36
FONT, SMALL, TITLE_FONT = 9.0, 8.5, 10.0
LINE = SMALL * 1.45 / 72  # one caption line, inches
LEGEND_STEP = 0.22  # one legend entry (a light and its label), inches
LEGEND_HANDLE, LEGEND_PAD, LEGEND_SPACING = 1.2, 0.6, 1.2  # the summary legend's spacing, in font sizes


class RiskOfBiasError(ReviewkitError):
    """The risk-of-bias file is malformed, or contradicts the tool or the table of included studies."""

    def __init__(self, message: str, path: str | Path | None = None, row: int | None = None,
                 column: str | None = None):
        super().__init__(message)
        self.path, self.row, self.column = path, row, column


def _quote(text: object, limit: int = 40) -> str:
    """A short, printable excerpt of what someone typed, for a one-line message."""
    text = str(text)
    short = text[:limit] + ("..." if len(text) > limit else "")
    return repr(short)


def _check_tool(tool: str) -> None:
    if tool not in TOOLS:
        raise RiskOfBiasError(f"unknown risk-of-bias tool {_quote(tool)}; the tools are {', '.join(TOOLS)}")


def _values(judgements: Iterable[str] | Mapping[str, str]) -> list[str]:
    return list(judgements.values() if isinstance(judgements, Mapping) else judgements)


def domains_for(tool: str, crossover: bool = False) -> tuple[str, ...]:
    """The domain columns a tool judges, in the tool's order.

    Parameters
    ----------
    tool : str
        ``"RoB 2"`` or ``"ROBINS-I"``.
    crossover : bool
        RoB 2 for a crossover trial: adds Domain S (``DS``, period and carryover effects).

    Returns
    -------
    tuple of str
        E.g. ``("D1", "D2", "D3", "D4", "D5")`` for a parallel-group trial.
    """
    _check_tool(tool)
    return tuple(d for d in DOMAIN_NAMES[tool] if d != CROSSOVER_DOMAIN or (tool == ROB2 and crossover))


def overall_judgement(tool: str, judgements: Iterable[str] | Mapping[str, str]) -> str:
    """The overall risk-of-bias judgement the tool's algorithm gives for its domain judgements.

    RoB 2: low only if all domains are low; high if any is high; else ``no information`` if any
    domain has none; else some concerns. ROBINS-I: the worst domain, with ``no information``
    between moderate and serious (ROBINS-I Table 3). RoB 2's "some concerns in multiple domains"
    route to high is a reviewer's judgement the algorithm does not make (module docstring).

    Parameters
    ----------
    tool : str
        ``"RoB 2"`` or ``"ROBINS-I"``.
    judgements : iterable of str, or mapping of domain to str
        One judgement per domain, each one the tool allows (lower case, e.g. ``"some concerns"``).

    Returns
    -------
    str
        The overall judgement.

    Raises
    ------
    RiskOfBiasError
        Unknown tool, no judgements, or a judgement the tool does not have.
    """
    _check_tool(tool)
    values = _values(judgements)
    if not values:
        raise RiskOfBiasError(f"{tool}: an overall judgement needs the domain judgements")
    order = JUDGEMENTS[tool]
    for value in values:
        if value not in order:
            raise RiskOfBiasError(f"{tool}: {_quote(value)} is not a judgement of the tool ({', '.join(order)})")
    return max(values, key=order.index)


def allowed_overall(tool: str, judgements: Iterable[str] | Mapping[str, str]) -> tuple[str, ...]:
    """The overall judgements a reviewer may record for these domain judgements.

    The algorithm's judgement first; then RoB 2's ``high`` when at least two domains raise some
    concerns, and ROBINS-I's worst judged domain when the algorithm says ``no information`` (the
    domains without information judged not to be key). See the module docstring.

    Parameters
    ----------
    tool : str
        ``"RoB 2"`` or ``"ROBINS-I"``.
    judgements : iterable of str, or mapping of domain to str
        The domain judgements.

    Returns
    -------
    tuple of str
        The allowed overall judgements, the algorithm's first.
    """
    values = _values(judgements)
    computed = overall_judgement(tool, values)
    allowed = [computed]
    if tool == ROB2 and computed != "high" and values.count("some concerns") >= 2:
        allowed.append("high")
    judged = [v for v in values if v != NO_INFORMATION]
    if tool == ROBINS_I and computed == NO_INFORMATION and judged:
        allowed.append(overall_judgement(tool, judged))
    return tuple(allowed)


# Reading the file --------------------------------------------------------------------------------


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (row number, cells) of a bounded, UTF-8 CSV file; blank rows skipped."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise RiskOfBiasError(f"{path}: cannot read the risk-of-bias file ({exc.strerror or type(exc).__name__})",
                              path=path) from None
    if len(data) > MAX_BYTES:
        raise RiskOfBiasError(f"{path}: larger than {MAX_BYTES // 1024} KiB; is it the right file?", path=path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RiskOfBiasError(f"{path}: not UTF-8 text (byte {exc.start})", path=path) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[tuple[int, list[str]]] = []
    try:
        for number, cells in enumerate(reader, 1):
            if any(c.strip() for c in cells):
                records.append((number, [c.strip() for c in cells]))
    except csv.Error as exc:
        raise RiskOfBiasError(f"{path}, line {reader.line_num}: not a valid CSV row ({exc})", path=path,
                              row=reader.line_num) from None
    if not records or records[0][0] != 1:
        raise RiskOfBiasError(f"{path}: the first row must be the header ({', '.join(REQUIRED_COLUMNS)}, ...)",
                              path=path, row=1)
    return records[0][1], records[1:]


def _check_header(path: Path, header: list[str]) -> None:
    seen: set[str] = set()
    folded = {c.casefold(): c for c in KNOWN_COLUMNS}
    for name in header:
        if name in seen:
            raise RiskOfBiasError(f"{path}, row 1: column {_quote(name)} appears twice", path=path, row=1, column=name)
        seen.add(name)
        if name in KNOWN_COLUMNS:
            continue
        if name.casefold() in folded:
            raise RiskOfBiasError(f"{path}, row 1, column {_quote(name)}: write it {folded[name.casefold()]!r} "
                                  "(column names are case-sensitive)", path=path, row=1, column=name)
        if _DOMAIN_LIKE.fullmatch(name):
            raise RiskOfBiasError(
                f"{path}, row 1, column {_quote(name)}: not a domain of RoB 2 (D1-D5, DS for crossover trials) "
                "or ROBINS-I (D1-D7)", path=path, row=1, column=name)
    missing = [c for c in REQUIRED_COLUMNS if c not in seen]
    if missing:
        raise RiskOfBiasError(f"{path}: missing column(s) {', '.join(missing)}", path=path, row=1)


def _judgement(tool: str, value: str, fail) -> str:
    """``value`` if the tool has that judgement, else a message that says what was meant."""
    if value in JUDGEMENTS[tool]:
        return value
    spaced = " ".join(value.casefold().split())
    if spaced in JUDGEMENTS[tool]:
        raise fail(f"write {spaced!r} exactly (judgements are lower case, single spaces)")
    other = ROBINS_I if tool == ROB2 else ROB2
    if spaced in JUDGEMENTS[other]:
        raise fail(f"{_quote(value)} is a {other} judgement; {tool} judgements are {', '.join(JUDGEMENTS[tool])}")
    raise fail(f"{_quote(value)} is not a {tool} judgement ({', '.join(JUDGEMENTS[tool])})")


def _tool(value: str, fail) -> str:
    if value in TOOLS:
        return value
    squeezed = re.sub(r"[\s_-]+", "", value.casefold())
    for tool in TOOLS:
        if squeezed == re.sub(r"[\s_-]+", "", tool.casefold()):
            raise fail(f"write {tool!r} exactly")
    raise fail(f"{_quote(value)} is not a tool; the tools are {', '.join(TOOLS)}")


def _studies_index(studies: pd.DataFrame) -> dict[str, tuple[str | None, str | None]]:
    missing = [c for c in ("study_id", "design") if c not in studies.columns]
    if missing:
        raise RiskOfBiasError(f"the table of included studies lacks column(s) {', '.join(missing)}")
    labels = studies["study"] if "study" in studies.columns else pd.Series(None, index=studies.index)
    index: dict[str, tuple[str | None, str | None]] = {}
    for sid, label, design in zip(studies["study_id"], labels, studies["design"]):
        index[str(sid)] = (None if pd.isna(label) else str(label), None if pd.isna(design) else str(design))
    return index


def load_risk_of_bias(path: str | Path, studies: pd.DataFrame,
                      outcome_domains: Sequence[str] | None = None) -> pd.DataFrame:
    """Read and check a risk-of-bias file; one row per assessment with its overall judgement.

    Parameters
    ----------
    path : str or Path
        The project's ``extraction/risk_of_bias.csv``. A missing file is an empty table (no
        study assessed yet).
    studies : DataFrame
        The table of included studies (``reviewkit.evidence.load_studies``): ``study_id``,
        ``study`` and ``design``. Every row's study must be there, and its design decides the tool:
        RoB 2 for ``rct`` and ``crossover_rct`` (with Domain S), ROBINS-I for
        ``nonrandomized_controlled``, ``retrospective_cohort`` and ``prospective_cohort``;
        single-arm designs are not assessed.
    outcome_domains : sequence of str, optional
        The outcome domains a row's ``outcome_domain`` may name (the protocol's); any when None.

    Returns
    -------
    DataFrame
        Columns ``TABLE_COLUMNS``: the file's cells (a domain the tool does not judge is None),
        ``study`` and ``design`` from ``studies``, ``outcome_domain`` None for a row about all
        outcomes, ``overall`` the reviewer's or else the algorithm's (``overall_by`` says which:
        ``"reviewer"`` or ``"algorithm"``), ``row`` the row in the file; then columns people added.

    Raises
    ------
    RiskOfBiasError
        The first problem, naming the file, the row and the column: unreadable or oversized file,
        a column name in the wrong case, an unknown domain, a study not in ``studies``, a tool that
        does not fit the design, an empty domain (write ``no information``), a judgement the tool
        does not have, an overall the tool does not allow, a judgement other than
        ``no information`` whose domain ``support`` does not name, or a study and outcome domain
        assessed twice.
    """
    path = Path(path)
    if not path.is_file():
        logger.info("no risk-of-bias file at %s: no study assessed", path)
        return pd.DataFrame(columns=list(TABLE_COLUMNS))
    header, records = _read_rows(path)
    _check_header(path, header)
    index = _studies_index(studies)
    extra = [c for c in header if c not in KNOWN_COLUMNS]
    rows: list[dict[str, Any]] = []
    seen: dict[tuple[str, str | None], int] = {}
    for number, cells in records:
        if len(cells) != len(header):
            raise RiskOfBiasError(f"{path}, row {number}: {len(cells)} cells, the header has {len(header)}",
                                  path=path, row=number)
        raw = dict(zip(header, cells))
        rows.append(_check_row(path, number, raw, index, outcome_domains, extra))
        key = (rows[-1]["study_id"], rows[-1]["outcome_domain"])
        if key in seen:
            what = f"outcome domain {key[1]!r}" if key[1] else "all outcomes (empty outcome_domain)"
            raise RiskOfBiasError(f"{path}, row {number}: study {_quote(key[0])} is assessed twice for {what} "
                                  f"(rows {seen[key]} and {number})", path=path, row=number, column="study_id")
        seen[key] = number
    table = _objects(pd.DataFrame(rows, columns=[*TABLE_COLUMNS, *extra]))
    no_info = int(sum((table[list(DOMAIN_COLUMNS)] == NO_INFORMATION).sum()))
    logger.info("risk of bias: %d assessment(s) read from %s (%s); %d domain judgement(s) 'no information'",
                len(table), path, ", ".join(f"{t}: {int((table['tool'] == t).sum())}" for t in TOOLS), no_info)
    return table


def _objects(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns with None for an empty cell (pandas' inferred str dtype would make it NaN)."""
    return frame.astype(object).where(frame.notna(), None)


def _check_row(path: Path, number: int, raw: dict[str, str], index: dict, outcome_domains: Sequence[str] | None,
               extra: list[str]) -> dict[str, Any]:
    def fail(column: str):
        def message(why: str) -> RiskOfBiasError:
            return RiskOfBiasError(f"{path}, row {number}, column {column!r}: {why}", path=path, row=number,
                                   column=column)
        return message

    sid = raw["study_id"]
    if not sid:
        raise fail("study_id")("must not be empty")
    if sid not in index:
        raise fail("study_id")(f"{_quote(sid)} is not in the table of included studies (studies.csv)")
    label, design = index[sid]
    name = " ".join((label or sid).split())[:60]  # studies.csv is read too: one short line in messages
    given = raw.get("study", "")
    if given and label and given != label:
        raise fail("study")(f"{_quote(given)} but studies.csv calls {_quote(sid)} {_quote(label)}")
    tool = _tool(raw["tool"], fail("tool")) if raw["tool"] else None
    if tool is None:
        raise fail("tool")(f"must not be empty ({', '.join(TOOLS)})")
    if design is None:
        raise fail("tool")(f"studies.csv gives no design for {name}, so the tool cannot be checked")
    expected = TOOL_FOR_DESIGN.get(design)
    if expected is None:
        raise fail("tool")(f"{name} has design {_quote(design)} in studies.csv: single-arm designs are not assessed with "
                           f"{' or '.join(TOOLS)}; remove the row")
    if tool != expected:
        raise fail("tool")(f"{name} has design {_quote(design)} in studies.csv: assess it with {expected}, not {tool}")
    outcome = raw.get("outcome_domain", "") or None
    if outcome is not None and outcome_domains is not None and outcome not in outcome_domains:
        raise fail("outcome_domain")(f"{_quote(outcome)} is not an outcome domain of the protocol "
                                     f"({', '.join(outcome_domains)})")
    crossover = design in CROSSOVER_DESIGNS
    domains = domains_for(tool, crossover)
    judgements: dict[str, str] = {}
    for column in DOMAIN_COLUMNS:
        value = raw.get(column, "")
        if column in domains:
            if column not in raw:
                raise RiskOfBiasError(f"{path}: missing column {column!r} ({name} is assessed with {tool}: "
                                      f"{', '.join(domains)})", path=path, row=1, column=column)
            if not value:
                raise fail(column)(f"must not be empty: {DOMAIN_NAMES[tool][column]}; write {NO_INFORMATION!r} "
                                   "when the sources do not say")
            judgements[column] = _judgement(tool, value, fail(column))
        elif value:
            why = (f"Domain S (period and carryover effects) is for crossover trials; {name} has design {_quote(design)}"
                   if column == CROSSOVER_DOMAIN and tool == ROB2 else f"{tool} has no domain {column}")
            raise fail(column)(f"must be empty: {why}")
    computed = overall_judgement(tool, judgements)
    overall, by = computed, "algorithm"
    support = raw["support"]
    if raw["overall"]:
        overall = _judgement(tool, raw["overall"], fail("overall"))
        allowed = allowed_overall(tool, judgements)
        if overall not in allowed:
            raise fail("overall")(f"{overall!r} contradicts the domains: {tool} gives {computed!r}"
                                  + (f" (or {', '.join(map(repr, allowed[1:]))} by judgement)" if len(allowed) > 1
                                     else "") + "; leave it empty to use the algorithm's")
        by = "reviewer"
        if overall != computed and not re.search(r"(?i)\boverall\s*:", support):
            raise fail("support")(f"the overall {overall!r} differs from the algorithm's {computed!r}: say why "
                                  "in support ('overall: ...')")
    for column, value in judgements.items():
        if value != NO_INFORMATION and not re.search(rf"\b{column}\s*:", support):
            raise fail("support")(f"{column} is judged {value!r}: support must give the facts it rests on "
                                  f"('{column}: ...', with the source); only 'no information' needs none")
    if not raw["source"]:
        raise fail("source")("must say which sources were read (even when they say nothing)")
    row: dict[str, Any] = {"study_id": sid, "study": label or given or None, "design": design,
                           "outcome_domain": outcome, "tool": tool, "overall": overall, "overall_by": by,
                           "support": support or None, "source": raw["source"], "row": number}
    row.update({column: judgements.get(column) for column in DOMAIN_COLUMNS})
    row.update({column: raw[column] for column in extra})
    return row


# Questions the later steps ask ---------------------------------------------------------------------


def missing_assessments(table: pd.DataFrame, studies: pd.DataFrame) -> list[str]:
    """Study ids of included studies whose design is assessed but that have no row in ``table``.

    Parameters
    ----------
    table : DataFrame
        From ``load_risk_of_bias``.
    studies : DataFrame
        The table of included studies.

    Returns
    -------
    list of str
        In the order of ``studies``.
    """
    assessed = set(table["study_id"])
    return [str(sid) for sid, design in zip(studies["study_id"], studies["design"])
            if design in TOOL_FOR_DESIGN and str(sid) not in assessed]


def rows_for_outcome(table: pd.DataFrame, outcome_domain: str | None = None) -> pd.DataFrame:
    """One row per study: its row for ``outcome_domain`` if it has one, else its all-outcomes row.

    Parameters
    ----------
    table : DataFrame
        From ``load_risk_of_bias``.
    outcome_domain : str, optional
        The outcome domain of a synthesis; None takes the all-outcomes rows only.

    Returns
    -------
    DataFrame
        A subset of ``table`` in its order; studies with neither row are left out.
    """
    general = table[table["outcome_domain"].isna()]
    if outcome_domain is None:
        return general
    specific = table[table["outcome_domain"] == outcome_domain]
    keep = specific.index.union(general.index[~general["study_id"].isin(set(specific["study_id"]))])
    return table.loc[table.index.isin(keep)]


def judgement_for(table: pd.DataFrame, study_id: str, outcome_domain: str | None = None) -> str:
    """The overall risk-of-bias judgement of one study, for one outcome domain or for all outcomes.

    Parameters
    ----------
    table : DataFrame
        From ``load_risk_of_bias``.
    study_id : str
        The screening's study id.
    outcome_domain : str, optional
        The outcome domain of the synthesis; a study without a row for it falls back on its row for
        all outcomes (empty ``outcome_domain``).

    Returns
    -------
    str
        The overall judgement, e.g. ``"no information"`` or ``"some concerns"``.

    Raises
    ------
    RiskOfBiasError
        The study has no applicable row: it is not assessed (yet), or its design is not assessed.
    """
    rows = rows_for_outcome(table, outcome_domain)
    match = rows[rows["study_id"] == study_id]
    if match.empty:
        raise _unassessed(study_id, outcome_domain)
    return str(match["overall"].iloc[0])


def _unassessed(study_id: str, outcome_domain: str | None) -> RiskOfBiasError:
    what = f" for outcome domain {outcome_domain!r} or for all outcomes" if outcome_domain else " for all outcomes"
    return RiskOfBiasError(f"study {_quote(study_id)} has no risk-of-bias assessment{what}")


def judgements_for(table: pd.DataFrame, study_ids: Iterable[str], outcome_domain: str | None = None) -> pd.DataFrame:
    """The overall judgements of the studies behind a synthesis, for the certainty-of-evidence step.

    Parameters
    ----------
    table : DataFrame
        From ``load_risk_of_bias``.
    study_ids : iterable of str
        The synthesis' studies (screening study ids); each one must have an applicable row.
    outcome_domain : str, optional
        As in ``judgement_for``.

    Returns
    -------
    DataFrame
        One row per study id, in the order given: ``study_id``, ``study``, ``tool``,
        ``outcome_domain`` (of the row used; None: all outcomes), ``overall`` and ``severity``
        (``SEVERITY``: 0 low, 1 some concerns or moderate, 2 high or serious, 3 critical; None for
        ``no information``).
    """
    rows = rows_for_outcome(table, outcome_domain).set_index("study_id", drop=False)
    out = []
    for sid in study_ids:
        if sid not in rows.index:
            raise _unassessed(sid, outcome_domain)
        row = rows.loc[sid]
        out.append({"study_id": sid, "study": row["study"], "tool": row["tool"],
                    "outcome_domain": row["outcome_domain"], "overall": row["overall"],
                    "severity": SEVERITY.get(row["overall"])})
    frame = _objects(pd.DataFrame(out, columns=["study_id", "study", "tool", "outcome_domain", "overall", "severity"]))
    frame["severity"] = frame["severity"].astype("Int64")
    return frame


# Plots -------------------------------------------------------------------------------------------


def _one_tool(table: pd.DataFrame, tool: str | None) -> tuple[str, pd.DataFrame]:
    tools = [t for t in TOOLS if (table["tool"] == t).any()]
    if tool is None:
        if len(tools) != 1:
            raise RiskOfBiasError(f"a risk-of-bias plot shows one tool; the table has {', '.join(tools) or 'none'}: "
                                  "pass tool=")
        tool = tools[0]
    _check_tool(tool)
    return tool, table[table["tool"] == tool]


def _plot_domains(tool: str, rows: pd.DataFrame) -> tuple[str, ...]:
    crossover = tool == ROB2 and rows["DS"].notna().any()
    return domains_for(tool, crossover)


def _cell(row: pd.Series, domain: str) -> str:
    value = row[domain]
    return NOT_APPLICABLE if value is None or pd.isna(value) else str(value)


def _label(row: pd.Series) -> str:
    label = str(row["study"] or row["study_id"])
    return f"{label} ({row['outcome_domain']})" if row["outcome_domain"] else label


def _text_width(text: str, size: float, weight: str = "normal") -> float:
    """Width of a line of text in inches, measured with the font matplotlib will draw it in."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    width, _, _ = TextToPath().get_text_width_height_descent(text, FontProperties(size=size, weight=weight),
                                                             ismath=False)
    return width / 72


def _caption(tool: str, domains: Sequence[str]) -> list[str]:
    return ["Domains:"] + [f"{d}: {DOMAIN_NAMES[tool][d]}." for d in domains]


def _present(rows: pd.DataFrame, domains: Sequence[str]) -> set[str]:
    """The judgements (and "not applicable") the rows hold in these domains or overall."""
    return {_cell(r, d) for _, r in rows.iterrows() for d in domains} | set(rows["overall"])


def _legend_entries(tool: str, rows: pd.DataFrame, domains: Sequence[str]) -> list[str]:
    present = _present(rows, domains)
    # robvis' legend order: the judgements from most to least severe, then no information, not applicable.
    order = [j for j in reversed(JUDGEMENTS[tool]) if j != NO_INFORMATION] + [NO_INFORMATION, NOT_APPLICABLE]
    return [j for j in order if j in present]


def _traffic_layout(tool: str, rows: pd.DataFrame) -> dict[str, Any]:
    domains = _plot_domains(tool, rows)
    label_w = max([_text_width(_label(r), FONT) for _, r in rows.iterrows()] + [_text_width("Study", FONT)]) + 0.2
    left = 0.3 + label_w  # the "Study" title, then the strip of study labels
    # Light columns are CELL wide; "Overall" is wider than a light at 9 pt, so its column widens.
    widths = [CELL] * len(domains) + [max(CELL, _text_width("Overall", FONT) + 0.1)]
    grid_w = sum(widths)
    caption = _caption(tool, domains)
    entries = _legend_entries(tool, rows, domains)
    caption_w = max(_text_width(line, SMALL) for line in caption)
    legend_w = 0.35 + max([_text_width(j.capitalize(), SMALL) for j in entries] + [_text_width("Judgement", SMALL)])
    top = 0.3 + 0.3  # title line, then the strip of domain labels
    grid_h = CELL * len(rows)
    below = 0.15 + max(len(caption) * LINE, (len(entries) + 1) * LEGEND_STEP) + 0.05
    width = max(left + grid_w, caption_w + 0.3 + legend_w) + 0.1
    return {"domains": domains, "widths": widths, "left": left, "label_w": label_w, "top": top, "caption": caption,
            "entries": entries, "caption_w": caption_w, "width": width, "height": top + grid_h + below}


def traffic_light_size(table: pd.DataFrame, tool: str | None = None) -> tuple[float, float]:
    """Width and height in inches at which ``traffic_light`` draws every text at its point size.

    Parameters
    ----------
    table : DataFrame
        From ``load_risk_of_bias`` (rows of one tool, or pass ``tool``).
    tool : str, optional
        The tool whose rows to draw.

    Returns
    -------
    tuple of float
        (width, height) of the drawing in inches.
    """
    tool, rows = _one_tool(table, tool)
    layout = _traffic_layout(tool, rows)
    return layout["width"], layout["height"]


def _light(ax: Axes, x: float, y: float, judgement: str, radius: float) -> None:
    """A light: a circle in the judgement's colour with its symbol in the middle."""
    from matplotlib.patches import Circle

    na = judgement == NOT_APPLICABLE
    ax.add_patch(Circle((x, y), radius, facecolor=COLOURS[judgement], edgecolor="none" if na else "black",
                        linewidth=0.8, gid=f"rob-light-{judgement.replace(' ', '-')}"))
    if SYMBOLS[judgement]:
        # A mathtext marker is centred on its glyph's box; a text's box includes the font's descent.
        size = radius * 72 * 1.1
        ax.plot([x], [y], linestyle="none", marker=f"$\\mathbf{{{SYMBOLS[judgement]}}}$", markersize=size,
                color="black", markeredgewidth=0)


def traffic_light(ax: Axes, table: pd.DataFrame, *, tool: str | None = None) -> Axes:
    """Draw robvis' traffic-light plot: one row per assessment, one coloured light per domain.

    Study labels on the left, domains (and Overall, on grey) across the top, a light with the
    judgement's colour and symbol per cell, the domain captions and the legend of the judgements
    present underneath, as ``robvis::rob_traffic_light`` draws them. Drawn in inches with equal
    aspect: at ``traffic_light_size(table)`` every text has its point size (8.5 pt or more).

    Parameters
    ----------
    ax : matplotlib Axes
        Where to draw; its axis is switched off.
    table : DataFrame
        From ``load_risk_of_bias``, or a subset (e.g. ``rows_for_outcome``), of one tool.
    tool : str, optional
        Draw only this tool's rows (needed when ``table`` holds both).

    Returns
    -------
    matplotlib Axes
        ``ax``.
    """
    from matplotlib.patches import Rectangle

    tool, rows = _one_tool(table, tool)
    lay = _traffic_layout(tool, rows)
    domains, left, top, widths = lay["domains"], lay["left"], lay["top"], lay["widths"]
    columns = (*domains, "Overall")
    starts = [left + sum(widths[:j]) for j in range(len(columns))]
    grid_w, grid_h = sum(widths), CELL * len(rows)
    # Labels are people's text: a "$" must print, not start mathtext.
    text: dict[str, Any] = {"color": INK, "fontsize": FONT, "parse_math": False}
    ax.text(left + grid_w / 2, 0.15, "Risk of bias domains", ha="center", va="center", **text)
    ax.text(0.12, top + grid_h / 2, "Study", ha="center", va="center", rotation=90, **text)
    for name, x, w in zip(columns, starts, widths):
        ax.add_patch(Rectangle((x, 0.3), w, 0.3, facecolor=STRIP, edgecolor=GRID, linewidth=0.5))
        ax.text(x + w / 2, 0.45, name, ha="center", va="center", **text)
    for i, (_, row) in enumerate(rows.iterrows()):
        y = top + CELL * i
        ax.add_patch(Rectangle((0.3, y), lay["label_w"], CELL, facecolor=STRIP, edgecolor=GRID, linewidth=0.5))
        ax.text(left - 0.1, y + CELL / 2, _label(row), ha="right", va="center", **text)
        for name, x, w in zip(columns, starts, widths):
            background = OVERALL_BACKGROUND if name == "Overall" else "white"
            ax.add_patch(Rectangle((x, y), w, CELL, facecolor=background, edgecolor=GRID, linewidth=0.5))
            judgement = str(row["overall"]) if name == "Overall" else _cell(row, name)
            _light(ax, x + w / 2, y + CELL / 2, judgement, 0.36 * CELL)
    y0 = top + grid_h + 0.15
    for k, line in enumerate(lay["caption"]):
        ax.text(0.05, y0 + k * LINE, line, ha="left", va="top", color=INK, fontsize=SMALL)
    x0 = lay["caption_w"] + 0.35
    ax.text(x0, y0, "Judgement", ha="left", va="top", color=INK, fontsize=SMALL, fontweight="bold")
    for k, judgement in enumerate(lay["entries"], 1):
        yc = y0 + (k - 0.5) * LEGEND_STEP + LINE
        _light(ax, x0 + 0.1, yc, judgement, 0.09)
        ax.text(x0 + 0.28, yc, judgement.capitalize(), ha="left", va="center", color=INK, fontsize=SMALL)
    ax.set_xlim(0, lay["width"])
    ax.set_ylim(lay["height"], 0)
    ax.set_aspect("equal", adjustable="box", anchor="NW")
    ax.set_axis_off()
    return ax


def _summary_shares(rows: pd.DataFrame, domains: Sequence[str], weights: pd.Series,
                    order: Sequence[str]) -> dict[str, dict[str, float]]:
    shares: dict[str, dict[str, float]] = {}
    total = float(weights.sum())
    for domain in (*domains, "overall"):
        cells = [str(r["overall"]) if domain == "overall" else _cell(r, domain) for _, r in rows.iterrows()]
        shares[domain] = {j: float(weights[[c == j for c in cells]].sum()) / total for j in order}
    return shares


def summary_plot(ax: Axes, table: pd.DataFrame, *, tool: str | None = None,
                 weights: Mapping[str, float] | pd.Series | None = None, overall: bool = True) -> Axes:
    """Draw robvis' summary plot: per domain, a bar split by the share of studies per judgement.

    Horizontal stacked bars from 0 to 100% (low on the left, then the more severe judgements,
    ``no information`` last), one per domain with "Overall risk of bias" in bold at the bottom, the
    legend of the judgements present underneath, as ``robvis::rob_summary`` draws them.

    Parameters
    ----------
    ax : matplotlib Axes
        Where to draw.
    table : DataFrame
        From ``load_risk_of_bias`` (of one tool, or pass ``tool``), one row per study: for a
        synthesis of one outcome domain take ``rows_for_outcome``.
    tool : str, optional
        Draw only this tool's rows.
    weights : mapping or Series of study_id to float, optional
        Weight each study (e.g. its weight in the meta-analysis) instead of counting it once.
    overall : bool
        Add the bar of the overall judgements.

    Returns
    -------
    matplotlib Axes
        ``ax``.

    Raises
    ------
    RiskOfBiasError
        A study appears twice, has no weight, or the weights are negative or sum to zero.
    """
    from matplotlib.patches import Patch
    from matplotlib.ticker import PercentFormatter
    from matplotlib.transforms import ScaledTranslation

    tool, rows = _one_tool(table, tool)
    twice = rows["study_id"][rows["study_id"].duplicated()]
    if not twice.empty:
        raise RiskOfBiasError(f"study {_quote(twice.iloc[0])} has more than one row: a summary plot counts each "
                              "study once (take rows_for_outcome(table, outcome_domain))")
    if weights is None:
        w = pd.Series(1.0, index=rows.index)
    else:
        lookup = dict(weights)
        absent = [sid for sid in rows["study_id"] if sid not in lookup]
        if absent:
            raise RiskOfBiasError(f"no weight for study {_quote(absent[0])}")
        w = pd.Series([float(lookup[sid]) for sid in rows["study_id"]], index=rows.index)
        if (w < 0).any() or not w.sum() > 0:
            raise RiskOfBiasError("weights must be non-negative and not all zero")
    domains = _plot_domains(tool, rows)
    order = [j for j in JUDGEMENTS[tool] if j != NO_INFORMATION] + [NO_INFORMATION, NOT_APPLICABLE]
    shares = _summary_shares(rows, domains, w, order)
    bars = [*domains, "overall"] if overall else list(domains)
    labels = {d: DOMAIN_NAMES[tool][d] for d in domains} | {"overall": "Overall risk of bias"}
    present = [j for j in order if any(shares[d][j] > 0 for d in bars)]
    for position, domain in enumerate(reversed(bars)):
        start = 0.0
        for judgement in present:
            share = shares[domain][judgement]
            if share > 0:
                ax.barh(position, share, left=start, height=0.7, color=COLOURS[judgement], edgecolor="black",
                        linewidth=0.6, gid=f"rob-bar-{judgement.replace(' ', '-')}")
            start += share
    ax.set_yticks(range(len(bars)), [labels[d] for d in reversed(bars)], fontsize=FONT, color=INK)
    if overall:
        ax.get_yticklabels()[0].set_fontweight("bold")
    ax.tick_params(axis="y", length=0)
    ax.tick_params(axis="x", labelsize=FONT, colors=INK)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, len(bars) - 0.4)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1])
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_xlabel("Share of studies" + (", weighted" if weights is not None else ""), fontsize=FONT, color=INK)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    handles = [Patch(facecolor=COLOURS[j], edgecolor="black", linewidth=0.6, label=SUMMARY_LABELS[j]) for j in present]
    # One row as robvis draws it, or as many columns as fit the width of the bars.
    available = ax.get_window_extent().width / ax.figure.dpi
    ncol = len(handles)
    while ncol > 1 and _legend_width([SUMMARY_LABELS[j] for j in present[:ncol]]) > available:
        ncol -= 1
    offset = ax.transAxes + ScaledTranslation(0, -0.55, ax.figure.dpi_scale_trans)
    legend = ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0), bbox_transform=offset,
                       ncol=ncol, fontsize=SMALL, frameon=True, handlelength=LEGEND_HANDLE,
                       handletextpad=LEGEND_PAD, columnspacing=LEGEND_SPACING)
    legend.get_frame().set_edgecolor("black")
    return ax


def _legend_width(labels: Sequence[str]) -> float:
    """Width in inches of a one-row summary legend with these labels (handles, gaps and frame)."""
    em = SMALL / 72
    return sum(_text_width(label, SMALL) + (LEGEND_HANDLE + LEGEND_PAD + LEGEND_SPACING) * em for label in labels) + em


def _summary_layout(tool: str, rows: pd.DataFrame) -> tuple[float, float, float, float]:
    """(label width, bars width, bars height, total height) in inches for the summary plot of these rows."""
    domains = _plot_domains(tool, rows)
    names = [DOMAIN_NAMES[tool][d] for d in domains]
    label_w = max([_text_width(n, FONT) for n in names] + [_text_width("Overall risk of bias", FONT, "bold")]) + 0.15
    present = _present(rows, domains)
    order = [j for j in JUDGEMENTS[tool] if j != NO_INFORMATION] + [NO_INFORMATION, NOT_APPLICABLE]
    bars_w = max(4.0, _legend_width([SUMMARY_LABELS[j] for j in order if j in present]) + 0.2)
    bars_h = 0.3 * (len(domains) + 1) + 0.1
    return label_w, bars_w, bars_h, bars_h + 1.0


def figure(table: pd.DataFrame, *, weights: Mapping[str, float] | pd.Series | None = None,
           note: str | None = None) -> Figure:
    """The risk-of-bias figure: per tool present, its traffic-light plot above its summary plot.

    Parameters
    ----------
    table : DataFrame
        From ``load_risk_of_bias`` (or ``rows_for_outcome``): one row per study for the summaries.
    weights : mapping or Series of study_id to float, optional
        Passed to ``summary_plot``.
    note : str, optional
        A line under the figure (e.g. "Sample corpus: judgements from abstracts and summaries").

    Returns
    -------
    matplotlib Figure
        Sized so that every text is at its point size (8 pt or more); not attached to pyplot.
    """
    from matplotlib.figure import Figure

    margin, head = 0.25, 0.35
    sections = []
    for tool in TOOLS:
        rows = table[table["tool"] == tool]
        if not rows.empty:
            tl_w, tl_h = traffic_light_size(rows)
            label_w, bars_w, bars_h, summ_h = _summary_layout(tool, rows)
            sections.append((tool, rows, tl_w, tl_h, label_w, bars_w, bars_h, summ_h))
    note_lines = [note] if note else []
    if not sections:
        note_lines.insert(0, "No included study has a risk-of-bias assessment.")
    width = max([s[2] for s in sections] + [s[4] + s[5] for s in sections]
                + [_text_width(line, SMALL) for line in note_lines] + [4.0]) + 2 * margin
    height = margin + sum(head + s[3] + 0.2 + s[7] for s in sections) + len(note_lines) * LINE + margin
    fig = Figure(figsize=(width, height))
    fig.patch.set_facecolor("white")

    def box(x: float, y_top: float, w: float, h: float) -> tuple[float, float, float, float]:
        return x / width, 1 - (y_top + h) / height, w / width, h / height

    y = margin
    for tool, rows, tl_w, tl_h, label_w, _, bars_h, summ_h in sections:
        fig.text(margin / width, 1 - (y + 0.15) / height, SECTION_TITLES[tool], fontsize=TITLE_FONT,
                 fontweight="bold", color=INK, va="center")
        y += head
        traffic_light(fig.add_axes(box(margin, y, tl_w, tl_h)), rows)
        y += tl_h + 0.2
        summary_plot(fig.add_axes(box(margin + label_w, y, width - 2 * margin - label_w, bars_h)), rows,
                     weights=weights)
        y += summ_h
    for k, line in enumerate(note_lines):
        fig.text(margin / width, 1 - (y + (k + 0.5) * LINE) / height, line, fontsize=SMALL, color=INK, va="center",
                 parse_math=False)
    return fig


def risk_of_bias_figure(table: pd.DataFrame, path_stem: str | Path, *,
                        weights: Mapping[str, float] | pd.Series | None = None, note: str | None = None) -> list[Path]:
    """Write ``figure(table)`` to ``<path_stem>.png`` (300 dpi) and ``<path_stem>.svg``, atomically.

    Parameters
    ----------
    table : DataFrame
        As for ``figure``.
    path_stem : str or Path
        The files' path without suffix.
    weights : mapping or Series of study_id to float, optional
        Passed to ``summary_plot``.
    note : str, optional
        A line under the figure.

    Returns
    -------
    list of Path
        The PNG and the SVG written. The SVG keeps its text as text and is the same bytes on every
        run for the same table.
    """
    return save_figure(figure(table, weights=weights, note=note), path_stem, dpi=300)
