"""Is a record retracted, corrected or under an expression of concern? What PubMed and Crossref say.

* PubMed: the publication type "Retracted Publication" (a retracted article), "Retraction of
  Publication" (the notice itself), and the comment/correction links ``reviewkit.pubmed`` keeps
  (``RetractionIn``, ``ErratumIn``, ``ExpressionOfConcernIn`` ...).
* Crossref: ``updated-by`` on a work lists the notices about it, ``update-to`` on a notice the works
  it updates (``reviewkit.crossref`` turns both into ``crossref_updates`` strings such as
  ``"retraction 10.1371/journal.pone.0210896 (updated-by)"``). Update types are the publisher's own
  words, so they are matched loosely (``retraction``, ``withdrawal``, ``removal`` and the misspelt
  ``retration`` Crossref's facets show).

``retracted`` is True when any source flags a retraction; False when a source whose data was read
(``checked``) flags none; None (unknown) when no source was read: the curated sample's records, for
instance, carry publication types a curator wrote, not PubMed's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

RETRACTION_WORDS = ("retraction", "retracted", "withdrawal", "withdrawn", "removal", "retration")
CONCERN_WORDS = ("concern",)
PUBMED_RETRACTED = "Retracted Publication"
PUBMED_NOTICE = "Retraction of Publication"


@dataclass(frozen=True)
class RetractionStatus:
    """``retracted``: True, False or None (unknown); ``notices``: what was found, for readers;
    ``checked``: the sources whose retraction data was read."""

    retracted: bool | None
    notices: tuple[str, ...] = ()
    checked: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {"retracted": self.retracted, "notices": list(self.notices), "retraction_checked_in": list(self.checked)}


UNKNOWN = RetractionStatus(None)


def kind_of(update_type: object) -> str:
    """"retraction", "expression of concern" or "correction" (every other update: erratum, new version ...)."""
    text = str(update_type or "").lower().replace("_", " ").replace("-", " ")
    if any(w in text for w in RETRACTION_WORDS):
        return "retraction"
    if any(w in text for w in CONCERN_WORDS):
        return "expression of concern"
    return "correction"


def _listed(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else []


def from_pubmed(record: Mapping) -> RetractionStatus:
    """What a PubMed record says (checked: PubMed)."""
    types = _listed(record.get("publication_types"))
    notices = []
    if PUBMED_RETRACTED in types:
        notices.append("PubMed: publication type Retracted Publication")
    if PUBMED_NOTICE in types:
        notices.append("PubMed: this record is a retraction notice (Retraction of Publication)")
    links = _listed(record.get("comments_corrections"))
    notices += [f"PubMed: {link}" for link in links]
    retracted = PUBMED_RETRACTED in types or any(link.startswith(("RetractionIn", "RetractedandRepublishedIn"))
                                                 for link in links)
    return RetractionStatus(retracted, tuple(notices), ("PubMed",))


def from_crossref(updates: Iterable[str]) -> RetractionStatus:
    """What Crossref's notices about a work say (``crossref_updates`` strings; checked: Crossref)."""
    updates = list(updates)
    retracted = any(kind_of(u.split(" ", 1)[0]) == "retraction" and u.endswith("(updated-by)") for u in updates)
    return RetractionStatus(retracted, tuple(f"Crossref: {u}" for u in updates), ("Crossref",))


def combine(*statuses: RetractionStatus) -> RetractionStatus:
    """One status from several sources: retracted if any says so, unknown only if none was read."""
    checked = tuple(dict.fromkeys(c for s in statuses for c in s.checked))
    notices = tuple(dict.fromkeys(n for s in statuses for n in s.notices))
    if any(s.retracted for s in statuses):
        return RetractionStatus(True, notices, checked)
    return RetractionStatus(False if checked else None, notices, checked)


def of_record(record: Mapping, *, pubmed_checked: bool) -> RetractionStatus:
    """A records-table row's status: its PubMed data (counted as checked only when ``pubmed_checked``:
    the record is PubMed's own, not a curated copy) and any Crossref notices it carries."""
    parts = []
    if record.get("source") == "PubMed":
        status = from_pubmed(record)
        parts.append(status if pubmed_checked or status.retracted else RetractionStatus(None, status.notices))
    if "crossref_updates" in record and isinstance(record.get("crossref_updates"), (list, tuple)):
        parts.append(from_crossref(record["crossref_updates"]))
    return combine(*parts) if parts else UNKNOWN


def flag_records(records, *, pubmed_checked: bool):
    """``records`` (records-table rows, a DataFrame) with ``retracted`` (True/False/None) and
    ``retraction_notices`` (one string, "; "-joined) from what each record carries (:func:`of_record`)."""
    statuses = [of_record(row, pubmed_checked=pubmed_checked) for row in records.to_dict("records")]
    return records.assign(retracted=[s.retracted for s in statuses],
                          retraction_notices=["; ".join(s.notices) for s in statuses])
