"""The protocol's searches in ClinicalTrials.gov (API v2), recorded in the snapshot; live or replayed.

A register search uses the protocol's own terms: the intervention's MeSH
headings and free text in ``query.intr``, the search's in ``query.cond``, each
ORed (Essie syntax; phrases quoted). No date limit is applied: the protocol's
dates are publication dates, and a registration has none. The search asks for
``countTotal`` and pages with ``pageToken`` until the last page (no
``nextPageToken``); the distinct NCT ids gathered must equal ``totalCount``, or
a loud error. Every page is recorded in the snapshot as ``ctgov.studies``
exchanges and a manifest (``registers/ctgov/<key>.json``: register, exact
query parameters, date run, count, NCT ids), so an offline run replays it and
names a request that was never recorded.

Only the pieces a reviewer needs are requested (``FIELDS``). A registration
becomes a row of the records table (``source`` ``ClinicalTrials.gov``,
``record_id`` ``CTG:<NCT id>``) with the register's own columns
(:data:`REGISTER_COLUMNS`): status, phase, enrolment, dates, whether results
are posted, and the PMIDs and DOIs of its publications. Only references the
register types ``RESULT`` or ``DERIVED`` are publications of the trial;
``BACKGROUND`` references are the literature it cites, never linked.

``REVIEWKIT_CTGOV_URL`` replaces ``https://clinicaltrials.gov/api/v2/`` (proxies,
the loopback emulator). ClinicalTrials.gov documents no rate limit; about 50
requests a minute per client is the figure its users report, and this module
keeps to it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .errors import SnapshotError
from .protocol import Protocol
from .pubmed import records_frame
from .records import RECORD_COLUMNS
from .snapshot import Snapshot
from .transport import Service, ServiceError, Transport

log = logging.getLogger(__name__)

REGISTER = "ClinicalTrials.gov"
CTGOV_API = "https://clinicaltrials.gov/api/v2/"
CTGOV = Service(REGISTER, CTGOV_API, "REVIEWKIT_CTGOV_URL", limit=50, interval=60.0,
                paths={"ctgov.studies": "studies", "ctgov.study": "studies/{nctId}"})
MANIFESTS = "registers/ctgov"
RECORD_PREFIX = "CTG:"
PAGE_SIZE = 200  # the API allows up to 1,000; 200 keeps a page of full registrations small
#: what a search asks for (modules and pieces of the API's data model)
FIELDS = ("IdentificationModule,StatusModule,ConditionsModule,DesignModule,ReferencesModule,"
          "SponsorCollaboratorsModule,BriefSummary,InterventionType,InterventionName,InterventionOtherName,HasResults")
#: the register's own columns, after the records-table columns
REGISTER_COLUMNS = ["nct_id", "study_type", "conditions", "interventions", "status", "why_stopped", "phase",
                    "enrolment", "enrolment_type", "start_date", "completion_date", "results_posted",
                    "linked_pmids", "linked_dois", "lead_sponsor", "last_update"]
PUBLICATION_TYPES = ("RESULT", "DERIVED")
ONGOING = frozenset({"RECRUITING", "NOT_YET_RECRUITING", "ACTIVE_NOT_RECRUITING", "ENROLLING_BY_INVITATION",
                     "SUSPENDED"})
ENDED = frozenset({"COMPLETED", "TERMINATED", "UNKNOWN"})
_NCT = re.compile(r"^NCT\d{8}$")
_DOI = re.compile(r"\b(10\.\d{4,9}/[^\s\"<>]+)", re.I)


# -- the query ------------------------------------------------------------------
def _essie(terms: Iterable[str]) -> str:
    """Terms ORed in Essie syntax: each once (case aside), phrases quoted."""
    seen: dict[str, str] = {}
    for term in terms:
        seen.setdefault(term.lower(), term)
    return " OR ".join(f'"{t}"' if re.search(r"[\s\-/]", t) else t for t in seen.values())


def register_query(protocol: Protocol, key: str) -> dict[str, str]:
    """The ClinicalTrials.gov query parameters of one protocol search (``query.cond``, ``query.intr``)."""
    block, intervention = protocol.search(key).block, protocol.intervention
    return {"query.cond": _essie([*block.mesh, *block.text]),
            "query.intr": _essie([*intervention.mesh, *intervention.text])}


def studies_params(query: Mapping[str, str], page_size: int, token: str | None = None) -> dict[str, str]:
    params = {**query, "countTotal": "true", "pageSize": str(page_size), "fields": FIELDS, "format": "json"}
    if token:
        params["pageToken"] = token
    return params


# -- a page ---------------------------------------------------------------------
def parse_page(body: bytes, where: str) -> dict:
    """A ``GET /studies`` answer: ``studies`` (a list), ``totalCount`` and ``nextPageToken`` when given."""
    try:
        data = json.loads(body)
    except ValueError:
        raise ServiceError(f"{where}: ClinicalTrials.gov answer is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("studies"), list):
        raise ServiceError(f"{where}: ClinicalTrials.gov answer has no list of studies")
    token = data.get("nextPageToken")
    if token is not None and (not isinstance(token, str) or not token):
        raise ServiceError(f"{where}: ClinicalTrials.gov answer has a malformed nextPageToken")
    return data


def _get(obj: Any, *path: str) -> Any:
    for name in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(name)
    return obj


def _strings(value: Any) -> list[str]:
    return [str(v).strip() for v in value if isinstance(v, (str, int)) and str(v).strip()] \
        if isinstance(value, list) else []


def _date(struct: Any) -> str | None:
    value = _get(struct, "date")
    return str(value) if isinstance(value, str) and value.strip() else None


def study_row(study: Mapping, searches: list[str] | None = None) -> dict:
    """One registration as a records-table row plus :data:`REGISTER_COLUMNS`."""
    ps = _get(study, "protocolSection") or {}
    nct = _get(ps, "identificationModule", "nctId")
    if not isinstance(nct, str) or not _NCT.match(nct):
        raise ServiceError(f"ClinicalTrials.gov study without a valid NCT id ({str(nct)[:40]!r})")
    status_module = _get(ps, "statusModule") or {}
    design = _get(ps, "designModule") or {}
    interventions = [i for i in _get(ps, "armsInterventionsModule", "interventions") or [] if isinstance(i, Mapping)]
    references = [r for r in _get(ps, "referencesModule", "references") or [] if isinstance(r, Mapping)]
    publications = [r for r in references if str(r.get("type") or "").upper() in PUBLICATION_TYPES]
    pmids = list(dict.fromkeys(str(r["pmid"]).strip() for r in publications
                               if str(r.get("pmid") or "").strip().isdigit()))
    dois = list(dict.fromkeys(m.rstrip(".,;").lower() for r in publications
                              for m in _DOI.findall(str(r.get("citation") or ""))))
    has_results = study.get("hasResults")
    results_posted = bool(has_results) if isinstance(has_results, bool) else \
        bool(_get(status_module, "resultsFirstPostDateStruct") or study.get("resultsSection"))
    enrolment = _get(design, "enrollmentInfo", "count")
    start, completion = _date(status_module.get("startDateStruct")), _date(status_module.get("completionDateStruct"))
    phases = _strings(design.get("phases"))
    row = {
        "record_id": RECORD_PREFIX + nct, "source": REGISTER,
        "pmid": None, "doi": None, "pmcid": None,
        "title": str(_get(ps, "identificationModule", "briefTitle") or _get(ps, "identificationModule", "officialTitle")
                     or ""),
        "authors": [], "first_author": None,
        "year": int(start[:4]) if start and start[:4].isdigit() else None,
        "journal": None, "journal_iso": None, "volume": None, "issue": None, "pages": None, "language": None,
        "publication_types": [], "mesh_terms": [], "is_human": False, "is_animal": False,
        "searches": list(searches or []),
        "nct_id": nct, "study_type": _get(design, "studyType"),
        "conditions": _strings(_get(ps, "conditionsModule", "conditions")),
        "interventions": [str(i.get("name")).strip() for i in interventions if str(i.get("name") or "").strip()],
        "status": status_module.get("overallStatus"), "why_stopped": status_module.get("whyStopped"),
        "phase": "/".join(phases) or None,
        "enrolment": int(enrolment) if isinstance(enrolment, (int, float)) and not isinstance(enrolment, bool) else None,
        "enrolment_type": _get(design, "enrollmentInfo", "type"),
        "start_date": start, "completion_date": completion, "results_posted": results_posted,
        "linked_pmids": pmids, "linked_dois": dois,
        "lead_sponsor": _get(ps, "sponsorCollaboratorsModule", "leadSponsor", "name"),
        "last_update": _date(status_module.get("lastUpdatePostDateStruct")),
    }
    row["abstract"] = _screening_text(row, _get(ps, "descriptionModule", "briefSummary"))
    return row


def _screening_text(row: Mapping, summary: Any) -> str:
    """What a screener reads in the abstract column: the brief summary, then the registration's facts."""
    facts = [f"Registration: {REGISTER} {row['nct_id']}", f"status {row['status'] or 'not given'}",
             f"phase {row['phase'] or 'not given'}",
             "enrolment " + (f"{row['enrolment']} ({str(row['enrolment_type'] or '').lower() or 'type not given'})"
                             if row["enrolment"] is not None else "not given"),
             f"start {row['start_date'] or 'not given'}", f"completion {row['completion_date'] or 'not given'}",
             f"results posted: {'yes' if row['results_posted'] else 'no'}",
             f"conditions: {'; '.join(row['conditions']) or 'none listed'}",
             f"interventions: {'; '.join(row['interventions']) or 'none listed'}"]
    if row["linked_pmids"] or row["linked_dois"]:
        facts.append("publications: " + "; ".join([*(f"PMID {p}" for p in row["linked_pmids"]),
                                                   *(f"doi:{d}" for d in row["linked_dois"])]))
    text = " ".join(str(summary).split()) if isinstance(summary, str) else ""
    return (text + "\n" if text else "") + "; ".join(facts)


# -- a whole search ---------------------------------------------------------------
@dataclass(frozen=True)
class RegisterResult:
    """One protocol search in a register. ``searched`` False: the snapshot holds no such search
    (``note`` says so, e.g. "not searched in this sample"); ``count`` is then None, never 0."""

    key: str
    register: str
    query: dict[str, str]
    count: int | None
    ids: list[str]
    manifest: dict = field(default_factory=dict)
    searched: bool = True
    note: str = ""

    @property
    def retrieved(self) -> int | None:
        return len(self.ids) if self.searched else None

    def as_dict(self) -> dict:
        """The ``registers`` entry of ``reviewkit search --json``."""
        out = {"key": self.key, "register": self.register, "query": self.query, "count": self.count,
               "retrieved": self.retrieved, "ids": self.ids, "searched": self.searched}
        return {**out, "note": self.note} if self.note else out


def not_searched(protocol: Protocol, key: str, note: str) -> RegisterResult:
    return RegisterResult(key, REGISTER, register_query(protocol, key), None, [], searched=False, note=note)


def search_register(transport: Transport, protocol: Protocol, key: str, *, page_size: int = PAGE_SIZE) -> RegisterResult:
    """Run (live) or replay one protocol search in ClinicalTrials.gov, every page; write or check its manifest."""
    query = register_query(protocol, key)
    where = f"{REGISTER} search {key!r}"
    log.info("[%s] %s: %s", key, REGISTER, "searching" if transport.records else "replaying the recorded search")
    date_run = transport.snapshot.clock()
    ids: list[str] = []
    exchanges: list[str] = []
    token: str | None = None
    count: int | None = None
    for page in range(1, 10_000):
        params = studies_params(query, page_size, token)
        body = transport.request("ctgov.studies", params)
        data = parse_page(body, f"{where}, page {page}")
        # the name this answer is recorded under: a later, different answer to the same request goes beside it
        exchanges.append(transport.snapshot.name_of("ctgov.studies", params, body))
        if page == 1:
            count = data.get("totalCount")
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise ServiceError(f"{where}: the first page has no totalCount (countTotal=true was asked)")
        ids += [study_row(s)["nct_id"] for s in data["studies"] if isinstance(s, Mapping)]
        token = data.get("nextPageToken")
        if not token:
            break
        if page * page_size > (count or 0) + page_size:  # a server that keeps handing out tokens
            raise ServiceError(f"{where}: page {page + 1} asked for, but totalCount {count} fits in fewer pages")
    assert count is not None
    distinct = list(dict.fromkeys(ids))
    if len(distinct) != count:
        raise ServiceError(f"{where}: ClinicalTrials.gov reports totalCount {count} but the pages gave "
                           f"{len(distinct)} distinct studies; the register may have changed during the run: run "
                           "the search again")
    manifest = {
        "key": key, "label": protocol.search(key).label, "register": REGISTER, "api": "ClinicalTrials.gov API v2",
        "query": query, "fields": FIELDS, "page_size": page_size, "date_limits": None, "date_run": date_run,
        "count": count, "ids": distinct, "exchanges": exchanges,
    }
    if transport.records:
        transport.snapshot.write_manifest(key, manifest, MANIFESTS)
    else:
        manifest = _check_replay(transport.snapshot, key, manifest)
    return RegisterResult(key, REGISTER, query, count, distinct, manifest)


def _check_replay(snapshot: Snapshot, key: str, replayed: dict) -> dict:
    recorded = snapshot.manifest(key, MANIFESTS)
    for name in ("query", "count", "ids"):
        if recorded.get(name) != replayed[name]:
            raise SnapshotError(f"snapshot {snapshot.root}, {REGISTER} search {key!r}: replayed {name} differs from "
                                "the recorded manifest (was the protocol changed after the snapshot was recorded?)")
    return recorded


# -- the records ------------------------------------------------------------------
def load_register_records(snapshot: Snapshot, searches: list[str] | None = None) -> pd.DataFrame:
    """The registrations the snapshot's register searches found (all, or those named), one row per NCT id."""
    rows: dict[str, dict] = {}
    found_by: dict[str, list[str]] = {}
    for key in searches or snapshot.search_keys(MANIFESTS):
        if key not in snapshot.search_keys(MANIFESTS):
            continue
        manifest = snapshot.manifest(key, MANIFESTS)
        recorded: dict[str, Mapping] = {}
        for ex_id in manifest["exchanges"]:
            ex = snapshot.load(ex_id)
            page = parse_page(ex.body, f"{REGISTER} search {key!r}, exchange {ex_id}")
            for study in page["studies"]:
                if isinstance(study, Mapping):
                    recorded.setdefault(study_row(study)["nct_id"], study)
        missing = [n for n in manifest["ids"] if n not in recorded]
        if missing:
            raise SnapshotError(f"snapshot {snapshot.root}, {REGISTER} search {key!r}: {len(missing)} registrations "
                                f"are not in its recorded pages (e.g. {missing[0]})")
        for nct in manifest["ids"]:
            rows.setdefault(nct, study_row(recorded[nct]))
            found_by.setdefault(nct, []).append(key)
    return register_frame({**rows[n], "searches": found_by[n]} for n in sorted(rows))


def register_frame(rows: Iterable[dict]) -> pd.DataFrame:
    """Register rows as a records-table frame with the register's columns."""
    rows = list(rows)
    frame = records_frame(rows)
    frame.insert(0, "record_id", [r["record_id"] for r in rows])
    frame.insert(1, "source", REGISTER)
    frame["searches"] = [r["searches"] for r in rows]
    for column in REGISTER_COLUMNS:
        frame[column] = pd.Series([r[column] for r in rows], index=frame.index, dtype=object)
    return frame[RECORD_COLUMNS + REGISTER_COLUMNS]


# -- Cochrane's lists ---------------------------------------------------------------
def cochrane_listing(status: object, results_posted: object) -> str | None:
    """Where Cochrane lists a registration with no publication found: "ongoing study" (not yet completed),
    "awaiting classification" (ended, or status unknown, without results); None otherwise (results are
    posted, it was withdrawn, or it is not a trial)."""
    status = str(status or "").upper()
    if status in ONGOING:
        return "ongoing study"
    if status in ENDED and not results_posted:
        return "awaiting classification"
    return None


def registered_studies(records: pd.DataFrame, excluded: Collection[str] = ()) -> pd.DataFrame:
    """Registrations listed as Cochrane's "ongoing studies" and "studies awaiting classification".

    ``records`` are deduplicated records (a registration merged into its publication is no longer one
    of them); ``excluded`` are record ids a screener excluded, which are not listed.
    """
    columns = ["listing", "nct_id", "title", "status", "phase", "enrolment", "start_date", "completion_date",
               "results_posted", "conditions", "interventions", "searches", "record_id"]
    if records.empty or "nct_id" not in records.columns:
        return pd.DataFrame(columns=columns)
    regs = records[(records["source"] == REGISTER) & ~records["record_id"].isin(set(excluded))]
    listing = [cochrane_listing(s, r) for s, r in zip(regs["status"], regs["results_posted"])]
    out = regs.assign(listing=listing)
    out = out[out["listing"].notna()]
    return out.sort_values(["listing", "nct_id"], ascending=[False, True])[columns].reset_index(drop=True)
