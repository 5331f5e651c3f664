"""The review protocol (a project's ``protocol.yml``) and the PubMed queries built from it.

A search's query is ``(intervention) AND (disorder)`` where each block ORs its
MeSH headings (``"X"[Mesh]``, exploded as PubMed does by default) and its
free-text synonyms in title/abstract (``x[tiab]``). Date limits are sent as
ESearch's ``mindate``/``maxdate``/``datetype`` parameters, not written into the
term, so the manifest can report them separately as PRISMA-S asks.

``registers:`` lists the trial registers searched with the same terms
(``ClinicalTrials.gov``; ``reviewkit.ctgov`` builds its query); none when absent.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from .errors import ProtocolError, ReviewkitError
from .io import read_yaml

_DATE = re.compile(r"^\d{4}(/(0[1-9]|1[0-2])(/(0[1-9]|[12]\d|3[01]))?)?$")
_DATETYPES = {"pdat", "edat", "mdat"}
# Characters PubMed reads as query syntax, and the placeholders of the `reviewkit init` template.
_SYNTAX = '"[]#()'
_PLACEHOLDER = re.compile(r"^<.*>$")
METHODS = ("FE", "DL", "REML", "PM", "ML", "HE", "SJ")
#: trial registers reviewkit can search (``registers:`` in the protocol)
REGISTERS = ("ClinicalTrials.gov",)


@dataclass(frozen=True)
class TermBlock:
    """MeSH headings and free-text synonyms for one concept (``label``: its name in reports)."""

    mesh: tuple[str, ...]
    text: tuple[str, ...]
    label: str = ""

    def query(self) -> str:
        parts = [f'"{m}"[Mesh]' for m in self.mesh] + [_tiab(t) for t in self.text]
        return "(" + " OR ".join(parts) + ")"


@dataclass(frozen=True)
class Search:
    key: str
    label: str
    block: TermBlock


@dataclass(frozen=True)
class DateLimits:
    datetype: str
    mindate: str | None
    maxdate: str | None

    def params(self) -> dict[str, str]:
        if not self.mindate or not self.maxdate:  # the protocol loader sets both or neither
            return {}
        return {"datetype": self.datetype, "mindate": self.mindate, "maxdate": self.maxdate}


@dataclass(frozen=True)
class Analysis:
    """How the review pools (``analysis:`` in the protocol)."""

    method: str = "REML"         # tau^2 estimator
    hksj: bool = False           # Hartung-Knapp-Sidik-Jonkman confidence intervals


@dataclass(frozen=True)
class OutcomeDomain:
    """An outcome domain the extraction's rows are grouped by (``outcomes:`` in the protocol).

    ``synthesise`` False: rows of the domain are extracted and shown, never pooled (outcomes
    outside the review question). ``favourable`` says whether more of the domain's event is
    better (``higher``: abstinence) or worse (``lower``: relapse); syntheses are shown in that
    direction (an odds ratio of relapse below 1 favours the intervention)."""

    key: str
    label: str
    synthesise: bool = True
    favourable: str = "higher"   # is more of the domain's event better (abstinence) or worse (relapse)?


@dataclass(frozen=True)
class Comparison:
    """A comparison the syntheses are made for, and the comparator types it holds
    (``comparisons:`` in the protocol). ``kind`` is ``control`` (intervention vs no intervention
    or a placebo), ``dose`` (more vs less of the intervention) or ``single_arm`` (no comparator)."""

    key: str
    label: str
    kind: str
    comparators: tuple[str, ...]


COMPARISON_KINDS = ("control", "dose", "single_arm")


@dataclass(frozen=True)
class Protocol:
    path: Path
    title: str
    question: str
    eligibility: dict[str, str]
    database: str
    intervention: TermBlock
    dates: DateLimits
    searches: dict[str, Search]
    screening_reasons: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Words that often mark a record to exclude, highlighted by the screening app (``screening.exclusion_cues``).
    exclusion_cues: tuple[str, ...] = ()
    analysis: Analysis = field(default_factory=Analysis)
    outcomes: dict[str, OutcomeDomain] = field(default_factory=dict)
    comparisons: dict[str, Comparison] = field(default_factory=dict)
    registers: tuple[str, ...] = ()
    sha256: str = ""

    def comparison_of(self, comparator_type: str) -> Comparison | None:
        """The comparison a comparator type belongs to (None: a comparator no synthesis takes)."""
        return next((c for c in self.comparisons.values() if comparator_type in c.comparators), None)

    def arms(self, comparison: str) -> tuple[str, str]:
        """(intervention arm, comparator arm) as plots and tables name them for a comparison: "Ketamine" vs
        "Control", "More ketamine" vs "Less ketamine", or "Ketamine" and "" for a single arm."""
        name = self.intervention_label
        kind = self.comparisons[comparison].kind if comparison in self.comparisons else "control"
        if kind == "dose":
            return f"More {name[:1].lower()}{name[1:]}", f"Less {name[:1].lower()}{name[1:]}"
        return name, "" if kind == "single_arm" else "Control"

    @property
    def comparator_types(self) -> tuple[str, ...]:
        return tuple(t for c in self.comparisons.values() for t in c.comparators)

    @property
    def intervention_label(self) -> str:
        """The intervention's name as reports print it ("Favours <label>")."""
        return self.intervention.label or self.intervention.text[0]

    def search(self, key: str) -> Search:
        try:
            return self.searches[key]
        except KeyError:
            raise ProtocolError(
                f"unknown search {key!r}; {self.path} defines: {', '.join(self.searches)}"
            ) from None

    def query(self, key: str) -> str:
        """The full PubMed query string for one search."""
        return f"{self.intervention.query()} AND {self.search(key).block.query()}"

    @property
    def labels(self) -> dict[str, str]:
        """Search key -> label, in protocol order (in this review each search is one disorder)."""
        return {key: search.label for key, search in self.searches.items()}

    def select(self, keys: list[str] | None) -> list[Search]:
        """The searches named by ``keys`` (all, in protocol order, when None or empty)."""
        return [self.search(k) for k in keys] if keys else list(self.searches.values())


def _tiab(term: str) -> str:
    return f'"{term}"[tiab]' if " " in term or "-" in term else f"{term}[tiab]"


def load_protocol(path: str | Path) -> Protocol:
    """Read and validate a protocol file; every error names the field and the file."""
    path = Path(path)
    try:
        raw = read_yaml(path, "protocol file")
    except ProtocolError:
        raise
    except ReviewkitError as exc:
        raise ProtocolError(str(exc)) from None
    v = _Validator(path)
    root = v.mapping(raw, "(top level)", required={"review", "database", "intervention", "searches"},
                     optional={"dates", "screening", "analysis", "outcomes", "comparisons", "registers"})
    review = v.mapping(root["review"], "review", required={"title", "question"}, optional={"eligibility"})
    title, question = v.text(review["title"], "review.title"), v.text(review["question"], "review.question")
    eligibility = v.mapping(review.get("eligibility") or {}, "review.eligibility",
                            optional={"population", "intervention", "comparators", "outcomes", "designs"})
    if root["database"] != "PubMed":
        raise ProtocolError(f"{path}: field 'database' must be PubMed (got {_short(root['database'])})")
    intervention = v.block(root["intervention"], "intervention")
    dates_raw = v.mapping(root.get("dates") or {}, "dates", optional={"datetype", "mindate", "maxdate"})
    dates = v.dates(dates_raw)
    searches_raw = v.mapping(root["searches"], "searches")
    if not searches_raw:
        raise ProtocolError(f"{path}: field 'searches' is empty; define at least one search")
    searches = {}
    for key, body in searches_raw.items():
        if not re.fullmatch(r"[a-z][a-z0-9_]*", str(key)):
            raise ProtocolError(f"{path}: search key {_short(key)} must be lower-case letters, digits or _")
        body = v.mapping(body, f"searches.{key}", required={"label", "mesh", "text"})
        searches[key] = Search(key, v.text(body["label"], f"searches.{key}.label"), v.block(body, f"searches.{key}"))
    screening_raw = v.mapping(root.get("screening") or {}, "screening",
                              optional={"title_abstract_reasons", "full_text_reasons", "exclusion_cues"})
    reasons = {
        stage: v.strings(screening_raw[name], f"screening.{name}")
        for stage, name in (("title_abstract", "title_abstract_reasons"), ("full_text", "full_text_reasons"))
        if name in screening_raw
    }
    analysis = v.analysis(root.get("analysis") or {})
    outcomes = v.outcomes(root.get("outcomes") or {})
    comparisons = v.comparisons(root.get("comparisons") or {})
    registers = v.registers(root["registers"]) if "registers" in root else ()
    return Protocol(
        path=path,
        title=title,
        question=question,
        eligibility={k: str(val) for k, val in eligibility.items()},
        database="PubMed",
        intervention=intervention,
        dates=dates,
        searches=searches,
        screening_reasons=reasons,
        exclusion_cues=v.strings(screening_raw["exclusion_cues"], "screening.exclusion_cues")
        if "exclusion_cues" in screening_raw else (),
        analysis=analysis,
        outcomes=outcomes,
        comparisons=comparisons,
        registers=registers,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
    )


class _Validator:
    def __init__(self, path: Path):
        self.path = path

    def fail(self, field_name: str, problem: str) -> ProtocolError:
        return ProtocolError(f"{self.path}: field '{field_name}' {problem}")

    def mapping(self, value: Any, name: str, required: frozenset[str] | set[str] = frozenset(),
                optional: set[str] | None = None) -> dict:
        if not isinstance(value, dict):
            raise self.fail(name, f"must be a mapping (got {type(value).__name__})")
        missing = sorted(required - value.keys())
        if missing:
            raise self.fail(name, f"is missing {', '.join(missing)}")
        if optional is not None:
            unknown = sorted(set(value) - required - optional)
            if unknown:
                allowed = ", ".join(sorted(required | optional))
                raise self.fail(name, f"has unknown key(s) {', '.join(map(str, unknown))} (allowed: {allowed})")
        return value

    def strings(self, value: Any, name: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(name, "must be a non-empty list")
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise self.fail(f"{name}[{i}]", "must be a non-empty string")
            if _PLACEHOLDER.match(item.strip()):
                raise self.fail(f"{name}[{i}]", f"still holds the template's placeholder {_short(item)}: "
                                                "replace it with your own")
            out.append(" ".join(item.split()))
        if len(set(out)) != len(out):
            raise self.fail(name, "lists the same entry twice")
        return tuple(out)

    def terms(self, value: Any, name: str) -> tuple[str, ...]:
        out = self.strings(value, name)
        for i, term in enumerate(out):
            if any(c in term for c in _SYNTAX):
                raise self.fail(f"{name}[{i}]", f"contains a character PubMed treats as syntax ({_SYNTAX}): "
                                                f"{_short(term)}")
        return out

    def text(self, value: Any, name: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(name, "must be a non-empty string")
        if _PLACEHOLDER.match(value.strip()):
            raise self.fail(name, f"still holds the template's placeholder {_short(value)}: replace it with your own")
        return " ".join(value.split())

    def block(self, value: Any, name: str) -> TermBlock:
        body = self.mapping(value, name, required={"mesh", "text"}, optional={"label"})
        label = self.text(body["label"], f"{name}.label") if "label" in body else ""
        return TermBlock(self.terms(body["mesh"], f"{name}.mesh"), self.terms(body["text"], f"{name}.text"), label)

    def key(self, key: Any, name: str) -> str:
        if isinstance(key, str) and _PLACEHOLDER.match(key):
            raise self.fail(name, f"still holds the template's placeholder key {_short(key)}: replace it with your own")
        if not isinstance(key, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", key):
            raise self.fail(name, f"has the key {_short(str(key))}; keys are lower-case letters, digits or _")
        return key

    def outcomes(self, raw: Any) -> dict[str, OutcomeDomain]:
        body = self.mapping(raw, "outcomes")
        out = {}
        for key, spec in body.items():
            self.key(key, "outcomes")
            spec = self.mapping(spec, f"outcomes.{key}", required={"label"}, optional={"synthesise", "favourable"})
            synthesise = spec.get("synthesise", True)
            if not isinstance(synthesise, bool):
                raise self.fail(f"outcomes.{key}.synthesise", "must be true or false")
            favourable = spec.get("favourable", "higher")
            if favourable not in ("higher", "lower"):
                raise self.fail(f"outcomes.{key}.favourable", "must be higher or lower")
            out[key] = OutcomeDomain(key, self.text(spec["label"], f"outcomes.{key}.label"), synthesise, favourable)
        return out

    def comparisons(self, raw: Any) -> dict[str, Comparison]:
        body = self.mapping(raw, "comparisons")
        out: dict[str, Comparison] = {}
        seen: dict[str, str] = {}
        for key, spec in body.items():
            self.key(key, "comparisons")
            spec = self.mapping(spec, f"comparisons.{key}", required={"label", "kind", "comparators"})
            if spec["kind"] not in COMPARISON_KINDS:
                raise self.fail(f"comparisons.{key}.kind", f"must be one of {', '.join(COMPARISON_KINDS)}")
            comparators = self.strings(spec["comparators"], f"comparisons.{key}.comparators")
            for c in comparators:
                if c in seen:
                    raise self.fail(f"comparisons.{key}.comparators", f"lists {_short(c)}, which comparisons."
                                                                      f"{seen[c]} already holds")
                seen[c] = key
            out[key] = Comparison(key, self.text(spec["label"], f"comparisons.{key}.label"), spec["kind"],
                                  comparators)
        return out

    def registers(self, raw: Any) -> tuple[str, ...]:
        names = self.strings(raw, "registers")
        for i, name in enumerate(names):
            if name not in REGISTERS:
                raise self.fail(f"registers[{i}]", f"is {_short(name)}; reviewkit searches {', '.join(REGISTERS)}")
        return names

    def analysis(self, raw: Any) -> Analysis:
        body = self.mapping(raw, "analysis", optional={"method", "hksj"})
        method = body.get("method", "REML")
        if method not in METHODS:
            raise self.fail("analysis.method", f"must be one of {', '.join(METHODS)} (got {_short(str(method))})")
        hksj = body.get("hksj", False)
        if not isinstance(hksj, bool):
            raise self.fail("analysis.hksj", f"must be true or false (got {_short(str(hksj))})")
        return Analysis(method, hksj)

    def dates(self, raw: dict) -> DateLimits:
        datetype = str(raw.get("datetype", "pdat"))
        if datetype not in _DATETYPES:
            raise self.fail("dates.datetype", f"must be one of {', '.join(sorted(_DATETYPES))} (got {datetype!r})")
        values = {}
        for name in ("mindate", "maxdate"):
            value = raw.get(name)
            if value is not None:
                value = str(value)
                if not _DATE.match(value):
                    raise self.fail(f"dates.{name}", f"must be YYYY, YYYY/MM or YYYY/MM/DD (got {_short(value)})")
                parts = [int(p) for p in value.split("/")]
                if len(parts) == 3:
                    try:
                        date(*parts)
                    except ValueError:
                        raise self.fail(f"dates.{name}", f"{value} is not a day of the calendar") from None
            values[name] = value
        if (values["mindate"] is None) != (values["maxdate"] is None):
            raise self.fail("dates", "needs both mindate and maxdate, or neither (E-utilities requires the pair)")
        low, high = values["mindate"], values["maxdate"]
        if low and high and low > high:
            raise self.fail("dates", f"mindate {values['mindate']} is after maxdate {values['maxdate']}")
        return DateLimits(datetype, values["mindate"], values["maxdate"])


def _short(text: str, limit: int = 60) -> str:
    """A value quoted in a message: repr'd and cut, so a hostile file cannot flood the terminal."""
    text = str(text)
    return repr(text if len(text) <= limit else text[:limit] + "...")
