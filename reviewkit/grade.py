"""Certainty of evidence (GRADE) for each synthesis, and the summary of findings table.

``assess(synthesis, rob)`` rates one synthesis. Evidence from randomized trials
starts **high**, from non-randomized studies **low** (GRADE Handbook 5.1); it is
rated down one level (serious) or two (very serious) for each of:

* **risk of bias**: from the studies' overall risk-of-bias judgements (RoB 2,
  ROBINS-I; ``rob(study_id, outcome_domain)``). No downgrade when every study is
  at low risk (for non-randomized studies: low or moderate); two levels when
  studies at high risk (RoB 2 high, ROBINS-I serious or critical) carry half the
  weight or more; otherwise one level, *including when the sources say too
  little to judge* ("no information"): evidence that cannot be checked is not
  treated as sound. Single-arm evidence has no comparison group: one level.
* **inconsistency** (k >= 2): one level when I² >= 50% or the 95% prediction
  interval includes no effect while the CI excludes it; two when I² >= 75% and
  study estimates fall on both sides of no effect. One study: not assessable.
* **imprecision**: one level when the 95% CI includes no effect, one when the
  participants fall short of the optimal information size (OIS; binary outcomes:
  the two-group sample size to detect a 25% relative risk reduction from the
  control group's risk with alpha 0.05 and power 0.8; other outcomes: 400
  participants, GRADE's rule of thumb; Guyatt 2011, J Clin Epidemiol 64:1283);
  two levels when there is no effect estimate at all.
* **indirectness**: one level when a study's population or outcome differs from
  the question (the extraction's ``indirectness``), one when numbers carrying half
  the weight or more come from secondary summaries rather than the paper.
* **publication bias**: Egger's test (``reviewkit.meta.regtest``) when k >= 10,
  one level when p < 0.10; below 10 studies "not assessable", no downgrade.

Each downgrade carries its reason, built from the numbers. Upgrading
non-randomized evidence (large effect, dose-response) is not attempted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import pandas as pd
from scipy import stats

LEVELS = ("very low", "low", "moderate", "high")
SYMBOLS = {"high": "⊕⊕⊕⊕", "moderate": "⊕⊕⊕◯", "low": "⊕⊕◯◯", "very low": "⊕◯◯◯"}
DOMAINS = ("risk of bias", "inconsistency", "imprecision", "indirectness", "publication bias")
HIGH_RISK = {"high", "serious", "critical"}
LOW_RISK_RCT = {"low"}
LOW_RISK_NRSI = {"low", "moderate"}
RRR = 0.25          # relative risk reduction the OIS is powered for
OIS_OTHER = 400     # participants: GRADE's rule of thumb for continuous and time-to-event outcomes
MIN_K_SMALL_STUDY = 10

RiskOfBias = Callable[[str, "str | None"], "str | None"]


@dataclass(frozen=True)
class Downgrade:
    """One GRADE domain's judgement: ``levels`` 0 (not serious), 1 (serious) or 2 (very serious)."""

    domain: str
    levels: int
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Certainty:
    """The certainty of one synthesis: where it started, every domain's judgement, and the result."""

    start: str
    level: str
    downgrades: tuple[Downgrade, ...]

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.level]

    def reasons(self) -> str:
        """The downgrades in words, for a comments column ("" when none)."""
        return "; ".join(f"{d.domain}: {d.reason}" for d in self.downgrades if d.levels)


def optimal_information_size(control_risk: float | None, measure: str | None) -> tuple[int, str]:
    """Participants needed (both groups) and how that number was reached."""
    if measure in ("OR", "RR", "RD") and control_risk is not None and 0 < control_risk < 1:
        p1, p2 = control_risk, control_risk * (1 - RRR)
        z = stats.norm.isf(0.025) + stats.norm.isf(0.2)
        per_group = z**2 * (p1 * (1 - p1) + p2 * (1 - p2)) / (p1 - p2) ** 2
        return int(2 * math.ceil(per_group)), (f"OIS {2 * math.ceil(per_group)} to detect a {RRR:.0%} relative "
                                               f"risk reduction from a control risk of {control_risk:.0%}")
    return OIS_OTHER, f"OIS {OIS_OTHER} participants (GRADE's rule of thumb)"


def control_risk(s) -> float | None:
    """The pooled control-group risk of the synthesis' domain event (e.g. of relapse, of abstinence).

    From the rows' arm counts; a row that counts the complement ("any drinking" in an abstinence
    synthesis) gives its complement. None without arm counts.
    """
    rows = s.studies
    if not len(rows) or "events_c" not in rows or rows["events_c"].isna().any() or rows["n_c"].isna().any():
        return None
    domain_event_is_bad = s.lower_is_better
    events = sum(float(e) if (f == "lower") == domain_event_is_bad else float(n) - float(e)
                 for e, n, f in zip(rows["events_c"], rows["n_c"], rows["favourable"]))
    total = float(rows["n_c"].sum())
    return events / total if total else None


def _risk_of_bias(s, rob: RiskOfBias | None) -> Downgrade:
    domain = "risk of bias"
    if s.design_group == "uncontrolled":
        return Downgrade(domain, 1, "single-arm evidence: no comparison group")
    rows = s.studies if s.k else s.narrative.drop_duplicates("study_id")
    if not len(rows):
        return Downgrade(domain, 0, "no studies")
    weights = rows["weight"].to_numpy(dtype=float) if s.k else [100 / len(rows)] * len(rows)
    judged = [(r["study"], (rob(r["study_id"], s.outcome_domain) if rob else None) or "no information", w)
              for (_, r), w in zip(rows.iterrows(), weights)]
    fine = LOW_RISK_RCT if s.design_group == "randomized" else LOW_RISK_NRSI
    if all(j in fine for _, j, _ in judged):
        return Downgrade(domain, 0, "all studies at low risk of bias")
    high = sum(w for _, j, w in judged if j in HIGH_RISK)
    listed = ", ".join(f"{study} {j}" for study, j, _ in judged)
    if high >= 50:
        return Downgrade(domain, 2, f"studies at high risk carry {high:.0f}% of the weight ({listed})")
    if all(j == "no information" for _, j, _ in judged):
        return Downgrade(domain, 1, f"not assessable: the sources read give no information to judge it ({listed})")
    return Downgrade(domain, 1, f"concerns about risk of bias ({listed})")


def _inconsistency(s) -> Downgrade:
    domain = "inconsistency"
    if s.k < 2 or s.model is None:
        return Downgrade(domain, 0, "not assessable with one study" if s.k == 1 else "no estimate")
    i2 = s.model.i2 or 0.0
    y = s.studies["yi"].to_numpy(dtype=float)
    both_sides = (y > 0).any() and (y < 0).any()
    if i2 >= 75 and both_sides:
        return Downgrade(domain, 2, f"I² = {i2:.0f}% with study results on both sides of no effect")
    pi_crosses = s.model.pi_low is not None and s.model.pi_low < 0 < s.model.pi_high
    ci_excludes = s.model.ci_low > 0 or s.model.ci_high < 0
    if i2 >= 50 or (pi_crosses and ci_excludes):
        why = f"I² = {i2:.0f}%" + ("; the prediction interval includes no effect" if pi_crosses else "")
        return Downgrade(domain, 1, why)
    return Downgrade(domain, 0, f"I² = {i2:.0f}%")


def _imprecision(s) -> Downgrade:
    domain = "imprecision"
    if s.model is None:
        return Downgrade(domain, 2, "no effect estimate: the sources give no usable numbers")
    low, high = s.ci
    null = s.null
    n = s.participants
    need, ois_how = optimal_information_size(control_risk(s), s.measure)
    ois_short = n is None or n < need
    ois_how = f"{n if n is not None else 'unknown'} participants, {ois_how}"
    ci_text = f"95% CI {_fmt(low)} to {_fmt(high)}"
    if null is None:  # a single arm: no effect to cross, only the information it rests on
        return Downgrade(domain, int(ois_short), f"{ci_text}" + (f"; fewer than the OIS ({ois_how})" if ois_short
                                                                  else ""))
    crosses = low is not None and low <= null <= high
    levels = int(crosses) + int(ois_short)
    parts = [f"{ci_text} includes {null:g}" if crosses else f"{ci_text} excludes {null:g}"]
    if ois_short:
        parts.append(f"fewer than the OIS ({ois_how})")
    return Downgrade(domain, levels, "; ".join(parts))


def _indirectness(s) -> Downgrade:
    domain = "indirectness"
    rows = s.studies if s.k else s.narrative  # the studies the estimate (or, without one, the finding) rests on
    notes = sorted({f"{r['study']}: {r['indirectness']}" for _, r in rows.iterrows()
                    if isinstance(r.get("indirectness"), str) and r["indirectness"]})
    secondary = 0.0
    if s.k:
        secondary = float(s.studies.loc[s.studies["source_kind"] == "secondary summary", "weight"].sum())
    reasons = list(notes)
    if secondary >= 50:
        reasons.append(f"{secondary:.0f}% of the weight from numbers in secondary summaries, not the papers")
    levels = min(2, int(bool(notes)) + int(secondary >= 50))
    return Downgrade(domain, levels, "; ".join(reasons) if reasons else "population, intervention and outcome as "
                                                                          "the question asks")


def _publication_bias(s) -> Downgrade:
    domain = "publication bias"
    if s.k < MIN_K_SMALL_STUDY:
        return Downgrade(domain, 0, f"not assessable with {s.k} stud{'y' if s.k == 1 else 'ies'} (small-study "
                                    f"tests need at least "
                                    f"{MIN_K_SMALL_STUDY})")
    from .meta import regtest

    test = regtest(s.studies["yi"], s.studies["vi"], method=s.method)
    if test.p < 0.10:
        return Downgrade(domain, 1, f"Egger's test p = {test.p:.3f}: small-study effects suspected")
    return Downgrade(domain, 0, f"Egger's test p = {test.p:.3f}")


def assess(s, rob: RiskOfBias | None = None) -> Certainty:
    """The GRADE certainty of one ``reviewkit.synthesis.Synthesis`` (rules in the module docstring)."""
    start = "high" if s.design_group == "randomized" else "low"
    downgrades = (_risk_of_bias(s, rob), _inconsistency(s), _imprecision(s), _indirectness(s),
                  _publication_bias(s))
    level = max(0, LEVELS.index(start) - sum(d.levels for d in downgrades))
    return Certainty(start, LEVELS[level], downgrades)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def absolute_effect(s) -> tuple[str, str]:
    """(risk with the comparator, risk with the intervention) per 1,000 for binary ratio syntheses, else ("", "")."""
    risk = control_risk(s)
    if risk is None or s.measure not in ("OR", "RR") or s.model is None:
        return "", ""
    low, high = s.ci
    est = s.estimate

    def with_intervention(ratio: float) -> float:
        if s.measure == "RR":
            return min(1.0, risk * ratio)
        odds = risk / (1 - risk) * ratio
        return odds / (1 + odds)

    # control_risk is of the domain's event (abstinence, relapse), as the ratio shown (Synthesis.estimate) is.
    return (f"{1000 * risk:.0f} per 1,000",
            f"{1000 * with_intervention(est):.0f} per 1,000 ({1000 * with_intervention(low):.0f} to "
            f"{1000 * with_intervention(high):.0f})")


def summary_of_findings(items: list, labels: dict[str, str]) -> pd.DataFrame:
    """The Cochrane summary of findings table: one row per synthesis (outcome, comparison, participants
    (studies), relative effect, absolute effect, certainty, comments)."""
    rows = []
    for s in items:
        low, high = s.ci
        studies = f"{s.k} stud{'y' if s.k == 1 else 'ies'}"
        if s.k_narrative:
            studies += f" + {s.k_narrative} without usable numbers"
        participants = f"{s.participants} ({studies})" if s.participants is not None else studies
        measure = "proportion" if s.single_arm else s.measure
        effect = (f"{measure} {_fmt(s.estimate)} ({_fmt(low)} to {_fmt(high)})" if s.model is not None
                  else "not estimable")
        comparator, intervention = absolute_effect(s)
        cert = s.certainty
        timepoints = sorted({str(t) for t in s.studies.get("timepoint", pd.Series(dtype=object)).dropna()})
        rows.append({
            "outcome": f"{labels.get(s.outcome_domain, s.outcome_domain)}"
                       + (f" ({'; '.join(timepoints)})" if timepoints else ""),
            "population": labels.get(s.disorder, s.disorder),
            "comparison": labels.get(s.comparison, s.comparison) + f" ({s.design_group})",
            "participants (studies)": participants,
            "relative effect (95% CI)": effect,
            "risk with comparator": comparator,
            "risk with intervention (95% CI)": intervention,
            "certainty": f"{cert.symbol} {cert.level.upper()}" if cert else "",
            "comments": cert.reasons() if cert else "",
        })
    return pd.DataFrame(rows)
