"""Syntheses: the included studies' results pooled per disorder, outcome domain and comparison.

``syntheses(extraction, included, studies, protocol)`` groups the extraction rows of
included studies by search (disorder), outcome domain, comparison, design group
(randomized, non-randomized and uncontrolled evidence are never pooled together,
Cochrane Handbook 24.6) and effect measure, and pools the rows marked ``pooled`` on
the analysis scale with ``reviewkit.meta.pool`` (REML by default, HKSJ and the
prediction interval available). A dose or schedule comparison is its own
comparison, never pooled with a control comparison. Rows of a study without
usable numbers stay in the synthesis of their domain and comparison as
*narrative* results (what the source found, in words), so "k = 0" never hides
that a study exists.

Effects are harmonised so that a positive ``yi`` (a ratio above 1) favours the
intervention (``reviewkit.effects``), whatever event a row counts ("abstinent" or
"any drinking"); each synthesis is then shown in the direction of its outcome
domain (the protocol's ``favourable``): an odds ratio of abstinence above 1, an
odds ratio or hazard ratio of relapse below 1, favours the intervention.
Single-arm syntheses show the proportion of the rows' own event (logit
proportions back-transformed), with no "favours" side.

SEs derived from a CI of a mean difference of small groups (under 60 a group) use
the t distribution with n1 + n2 - 2 degrees of freedom (Cochrane Handbook
6.5.2.3); every derivation is named in ``effect_from``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from .effects import PROPORTION_MEASURES, RATIO_MEASURES, data_kind, effect_sizes
from .extraction import design_group
from .meta import PoolingError, PoolResult, pool
from .protocol import Protocol

KEY = ("disorder", "outcome_domain", "comparison", "design_group", "measure")
DESIGN_GROUPS = ("randomized", "non-randomized", "uncontrolled")
LOG_SCALE = RATIO_MEASURES
SMALL_GROUP = 60  # Handbook 6.5.2.3: below this, use t rather than z to recover an SE from a CI


@dataclass(frozen=True)
class Synthesis:
    """One synthesis: its key, the study results pooled (``studies``, with ``yi``, ``vi``,
    ``weight``), the results without usable numbers (``narrative``), and the model.

    ``model`` is None when no row has usable numbers (k = 0). ``certainty`` is filled by
    ``reviewkit.grade.assess`` (None until then).
    """

    disorder: str
    outcome_domain: str
    comparison: str
    design_group: str
    measure: str | None
    studies: pd.DataFrame
    narrative: pd.DataFrame
    model: PoolResult | None
    method: str
    hksj: bool
    lower_is_better: bool = False
    certainty: Any = None
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple:
        return (self.disorder, self.outcome_domain, self.comparison, self.design_group, self.measure)

    @property
    def k(self) -> int:
        """Studies pooled (with usable numbers)."""
        return len(self.studies)

    @property
    def k_narrative(self) -> int:
        """Studies in the synthesis without usable numbers (described, not pooled)."""
        return int(self.narrative["study_id"].nunique()) if len(self.narrative) else 0

    @property
    def participants(self) -> int | None:
        """Participants analysed in the pooled studies (None when unknown for every one)."""
        known = [n for n in self.studies["participants"] if pd.notna(n)]
        return int(sum(known)) if known else None

    @property
    def ratio(self) -> bool:
        return self.measure in LOG_SCALE

    @property
    def single_arm(self) -> bool:
        return self.measure in PROPORTION_MEASURES

    def natural(self, value: float | None) -> float | None:
        """An analysis-scale value in the domain's direction and on the shown scale (ratios exponentiated,
        logit proportions back-transformed)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        value = -value if self.lower_is_better else value
        if self.measure == "PLO":
            return 1 / (1 + math.exp(-value))
        return math.exp(value) if self.ratio else value

    def interval(self, low: float | None, high: float | None) -> tuple[float | None, float | None]:
        a, b = self.natural(low), self.natural(high)
        return (a, b) if a is None or b is None or a <= b else (b, a)

    @property
    def estimate(self) -> float | None:
        return self.natural(self.model.estimate) if self.model else None

    @property
    def ci(self) -> tuple[float | None, float | None]:
        return self.interval(self.model.ci_low, self.model.ci_high) if self.model else (None, None)

    @property
    def pi(self) -> tuple[float | None, float | None]:
        if not self.model or self.model.pi_low is None:
            return None, None
        return self.interval(self.model.pi_low, self.model.pi_high)

    @property
    def favours(self) -> str:
        """``intervention``, ``comparator`` (the CI excludes no effect) or ``neither``; ``unknown`` for k = 0
        and ``no comparison`` for a single-arm synthesis."""
        if self.model is None:
            return "unknown"
        if self.single_arm:
            return "no comparison"
        if self.model.ci_low > 0:
            return "intervention"
        if self.model.ci_high < 0:
            return "comparator"
        return "neither"

    @property
    def null(self) -> float | None:
        """No effect on the shown scale: 1 for ratios, 0 for differences, None for a single arm."""
        if self.single_arm:
            return None
        return 1.0 if self.ratio else 0.0

    def label(self) -> str:
        """"Alcohol use disorder · Craving · Ketamine vs control (randomized)"."""
        names = [self.labels.get(x, x) for x in (self.disorder, self.outcome_domain, self.comparison)]
        return " · ".join(names) + f" ({self.design_group})"

    def as_dict(self) -> dict:
        """The synthesis as `reviewkit synthesis --json` and the audit's ``evidence`` print it."""
        low, high = self.ci
        pi_low, pi_high = self.pi
        cert = self.certainty
        return {
            "disorder": self.disorder, "outcome_domain": self.outcome_domain, "comparison": self.comparison,
            "design": self.design_group, "measure": self.measure, "k": self.k, "k_without_numbers": self.k_narrative,
            "participants": self.participants, "studies": list(self.studies["study"]) + list(
                self.narrative.drop_duplicates("study_id")["study"]),
            "estimate": _round(self.estimate), "ci_low": _round(low), "ci_high": _round(high),
            "pi_low": _round(pi_low), "pi_high": _round(pi_high),
            "i2": _round(self.model.i2) if self.model and self.model.i2 is not None else None,
            "tau2": _round(self.model.tau2) if self.model and self.model.tau2 is not None else None,
            "favours": self.favours, "lower_is_better": self.lower_is_better,
            "method": self.method + (" HKSJ" if self.hksj else ""),
            "certainty": cert.level if cert else None,
            "downgrades": [d.as_dict() for d in cert.downgrades] if cert else [],
            "narrative": [f"{r['study']}: {r['reported_direction']} ({r['reported']})"
                          for _, r in self.narrative.iterrows()],
        }


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(float(value), digits)


def study_rows(extraction: pd.DataFrame, included: pd.DataFrame, studies: pd.DataFrame) -> pd.DataFrame:
    """The extraction rows of studies included at full text, each with its study's design and design group.

    ``included`` is ``reviewkit.evidence.included_from_screening``'s table (one row per report
    and disorder); ``studies`` the table of included studies.
    """
    keep = set(included["study_id"]) if len(included) else set()
    rows = extraction[extraction["study_id"].isin(keep)].copy()
    design = dict(zip(studies["study_id"], studies["design"]))
    rows["design"] = [design.get(s) for s in rows["study_id"]]
    rows["design_group"] = [design_group(d) for d in rows["design"]]
    return rows


def _participants(row: pd.Series) -> float:
    for cols in (("n_t", "n_c"), ("randomized_t", "randomized_c"), ("n",)):
        if all(pd.notna(row.get(c)) for c in cols):
            return float(sum(row[c] for c in cols))
    return math.nan


def _with_small_sample_se(rows: pd.DataFrame) -> pd.DataFrame:
    """For MD/SMD reported with a CI by groups under 60, ``ci_df`` = n1 + n2 - 2: the SE comes from
    t, not z (Handbook 6.5.2.3)."""
    out = rows.copy()
    small = out["n_t"].notna() & out["n_c"].notna() & (out[["n_t", "n_c"]].min(axis=1) < SMALL_GROUP)
    from_ci = out["measure"].isin(["MD", "SMD"]) & out["estimate"].notna() & out["ci_low"].notna() & \
        out["mean_t"].isna()
    out["ci_df"] = (out["n_t"] + out["n_c"] - 2).where(small & from_ci)
    return out


def syntheses(extraction: pd.DataFrame, included: pd.DataFrame, studies: pd.DataFrame, protocol: Protocol, *,
              method: str | None = None, hksj: bool | None = None) -> list[Synthesis]:
    """Every synthesis the included studies allow, in protocol order (search, domain, comparison).

    Parameters
    ----------
    extraction : DataFrame
        ``reviewkit.extraction.load_extraction``'s table.
    included, studies : DataFrame
        The included reports (``reviewkit.evidence.included_from_screening``) and studies
        (``reviewkit.evidence.load_studies``).
    protocol : Protocol
        Its searches, outcome domains and comparisons order and name the syntheses.
    method, hksj : optional
        tau^2 estimator and Hartung-Knapp-Sidik-Jonkman; default the protocol's ``analysis``.
    """
    method = method or protocol.analysis.method
    hksj = protocol.analysis.hksj if hksj is None else bool(hksj)
    rows = study_rows(extraction, included, studies)
    single = {c.key for c in protocol.comparisons.values() if c.kind == "single_arm"}
    rows.loc[rows["comparison"].isin(single), "design_group"] = "uncontrolled"  # no comparator, whatever the design
    rows = rows[rows["comparison"].notna() & rows["outcome_domain"].map(
        lambda d: protocol.outcomes[d].synthesise if d in protocol.outcomes else False)]
    labels = {**protocol.labels, **{k: o.label for k, o in protocol.outcomes.items()},
              **{k: c.label for k, c in protocol.comparisons.items()}}
    pooled = _with_small_sample_se(rows[rows["pooled"]])
    usable = rows.apply(lambda r: data_kind(r) is not None, axis=1) if len(rows) else pd.Series(dtype=bool)
    narrative = rows[~rows["pooled"] & ~usable & rows["reported_direction"].notna()] if len(rows) else rows
    rank = _order(protocol)
    numeric = sorted({tuple(r[c] for c in KEY) for _, r in pooled.iterrows()}, key=rank)
    # Narrative results join the first numeric synthesis of their domain and comparison, or stand alone.
    home: dict[tuple, tuple] = {}
    for key in numeric:
        home.setdefault(key[:4], key)
    alone = sorted({(*(r[c] for c in KEY[:4]), None) for _, r in narrative.iterrows()} -
                   {(*k, None) for k in home}, key=rank)
    out: list[Synthesis] = []
    for key in sorted([*numeric, *alone], key=rank):
        these = pooled[_matching(pooled, KEY, key)] if key[4] else pooled.iloc[0:0]
        words = narrative[_matching(narrative, KEY[:4], key[:4])] \
            if home.get(key[:4], (*key[:4], None)) == key else narrative.iloc[0:0]
        lower = protocol.outcomes[key[1]].favourable == "lower"
        out.append(_synthesise(key, these, words, method, hksj, labels, lower))
    return out


def _matching(rows: pd.DataFrame, columns: tuple[str, ...], key: tuple) -> list[bool]:
    return [tuple(r) == key for r in rows[list(columns)].itertuples(index=False)]


def _order(protocol: Protocol):
    searches, domains, comparisons = (list(protocol.searches), list(protocol.outcomes), list(protocol.comparisons))

    def rank(key: tuple) -> tuple:
        disorder, domain, comparison, group, measure = key
        return (searches.index(disorder), domains.index(domain), comparisons.index(comparison),
                DESIGN_GROUPS.index(group) if group in DESIGN_GROUPS else len(DESIGN_GROUPS), measure or "")
    return rank


def _synthesise(key: tuple, rows: pd.DataFrame, narrative: pd.DataFrame, method: str, hksj: bool,
                labels: dict[str, str], lower_is_better: bool) -> Synthesis:
    disorder, domain, comparison, group, measure = key
    model = None
    studies = pd.DataFrame(columns=["row_id", "study_id", "study", "yi", "vi", "weight", "participants"])
    if measure in PROPORTION_MEASURES:
        lower_is_better = False  # a proportion of the rows' own event: nothing to harmonise
        if len(rows) and rows["favourable"].nunique() > 1:
            raise PoolingError(f"single-arm rows {', '.join(rows['row_id'])} count opposite events; extract one")
        rows = rows.drop(columns=["favourable"])
    if len(rows):
        effects = effect_sizes(rows, measure)
        effects["participants"] = [_participants(r) for _, r in effects.iterrows()]
        model = pool(effects["yi"], effects["vi"], method=method, hksj=hksj)
        tau2 = model.tau2 or 0.0
        w = 1 / (effects["vi"].to_numpy(dtype=float) + tau2)
        effects["weight"] = 100 * w / w.sum()
        studies = effects.reset_index(drop=True)
    return Synthesis(disorder, domain, comparison, group, measure, studies, narrative.reset_index(drop=True),
                     model, method, hksj, lower_is_better, None, labels)


def with_certainty(items: list[Synthesis], assess) -> list[Synthesis]:
    """The syntheses with ``certainty`` filled by ``assess(synthesis)`` (``reviewkit.grade.assess``)."""
    return [replace(s, certainty=assess(s)) for s in items]


def sensitivity(s: Synthesis, high_risk: set[str] | frozenset[str] = frozenset()) -> pd.DataFrame:
    """Sensitivity analyses of one synthesis with k >= 2, on the shown scale: the main model, the
    common-effect model, without rows from secondary summaries, without studies at high risk of bias
    (``high_risk``: their study ids), and leaving out each study in turn (metafor's ``leave1out``)."""
    from .meta import leave1out

    if s.k < 2 or s.model is None:
        return pd.DataFrame(columns=["analysis", "k", "estimate", "ci_low", "ci_high", "i2"])
    y, v = s.studies["yi"].to_numpy(dtype=float), s.studies["vi"].to_numpy(dtype=float)

    def row(name: str, res: PoolResult | None, k: int) -> dict:
        if res is None:
            return {"analysis": name, "k": k, "estimate": None, "ci_low": None, "ci_high": None, "i2": None}
        low, high = s.interval(res.ci_low, res.ci_high)
        return {"analysis": name, "k": k, "estimate": s.natural(res.estimate), "ci_low": low, "ci_high": high,
                "i2": res.i2}

    def subset(name: str, keep: np.ndarray) -> dict:
        k = int(keep.sum())
        if k == s.k:
            return row(f"{name}: no study left out", s.model, k)
        return row(name, pool(y[keep], v[keep], method=s.method, hksj=s.hksj) if k else None, k)

    out = [row(f"main analysis ({s.method}{' HKSJ' if s.hksj else ''})", s.model, s.k),
           row("common-effect model", pool(y, v, method="FE"), s.k),
           subset("without numbers from secondary summaries",
                  (s.studies["source_kind"] != "secondary summary").to_numpy()),
           subset("without studies at high risk of bias", (~s.studies["study_id"].isin(high_risk)).to_numpy())]
    omitted = leave1out(y, v, method=s.method, hksj=s.hksj)
    for (_, left), study in zip(omitted.iterrows(), s.studies["study"]):
        low, high = s.interval(left["ci_low"], left["ci_high"])
        out.append({"analysis": f"leaving out {study}", "k": s.k - 1, "estimate": s.natural(left["estimate"]),
                    "ci_low": low, "ci_high": high, "i2": left["i2"]})
    return pd.DataFrame(out)


def synthesis_table(items: list[Synthesis]) -> pd.DataFrame:
    """One row per synthesis, the JSON interface's fields, for tables and exports."""
    return pd.DataFrame([s.as_dict() for s in items])


