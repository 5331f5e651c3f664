"""A loopback ClinicalTrials.gov API v2 server: reviewkit's register searches run against it over real HTTP.

Built from the real responses recorded in ``tests/fixtures/ctgov/`` and their protocol notes
(``protocol.md`` there): ``GET /api/v2/studies`` and ``GET /api/v2/studies/{nctId}``, answering
with ``Study`` objects as the API does.

* Queries: ``query.cond`` (conditions, keywords and titles), ``query.intr`` (intervention names,
  other names and descriptions), ``query.term`` and ``query.titles`` (titles, conditions and
  summary), in a subset of Essie: words and quoted phrases joined by ``OR`` and ``AND`` with
  parentheses; a word or phrase matches when its words appear in that order in one of the fields
  (case aside). ``filter.overallStatus`` and ``filter.ids`` filter.
* Paging: ``pageSize`` (default 10, 0 means the default, above 1,000 coerced down to 1,000),
  ``countTotal`` (``totalCount`` on the first page only), an opaque ``nextPageToken`` whenever a
  page is full (so a count that is a multiple of the page size ends with an empty page) and none on
  the last page; a token reused with other query parameters is refused (HTTP 400).
* ``fields``: only the requested pieces or modules come back, at their normal paths.
* Errors: HTTP 400 ``text/plain`` for an unknown parameter (the API's words: ``\\`x\\` is unknown
  parameter``) and for a bad value; 404 for an unknown NCT id (its text is not recorded anywhere; the
  emulator says ``Study not found``). The API documents no rate limit; users report about 50
  requests a minute per client, which ``rate_limit`` emulates with a 429 (its body is not recorded).

Studies are API v2 ``Study`` dicts: the recorded ones, or ``synthetic_studies`` (titles say they are
synthetic; NCT ids from NCT90000001, a range ClinicalTrials.gov has not issued).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from .emulator import Faults
from .json_server import NO_FAULTS, Answer, JsonApiEmulator

CTGOV_PATH = "/api/v2/"
MAX_PAGE = 1000
KNOWN_PARAMS = frozenset({
    "format", "markupFormat", "query.cond", "query.term", "query.locn", "query.titles", "query.intr", "query.outc",
    "query.spons", "query.lead", "query.id", "query.patient", "filter.overallStatus", "filter.geo", "filter.ids",
    "filter.advanced", "filter.synonyms", "aggFilters", "geoDecay", "fields", "sort", "countTotal", "pageSize",
    "pageToken"})
PAGING = frozenset({"countTotal", "pageSize", "pageToken"})
STATUSES = ("ACTIVE_NOT_RECRUITING", "COMPLETED", "ENROLLING_BY_INVITATION", "NOT_YET_RECRUITING", "RECRUITING",
            "SUSPENDED", "TERMINATED", "WITHDRAWN", "AVAILABLE", "NO_LONGER_AVAILABLE", "TEMPORARILY_NOT_AVAILABLE",
            "APPROVED_FOR_MARKETING", "WITHHELD", "UNKNOWN")

_P = ("protocolSection",)
#: piece name -> path in a Study ("[]": every item of a list)
PIECES: dict[str, tuple[str, ...]] = {
    "NCTId": (*_P, "identificationModule", "nctId"),
    "BriefTitle": (*_P, "identificationModule", "briefTitle"),
    "OfficialTitle": (*_P, "identificationModule", "officialTitle"),
    "Acronym": (*_P, "identificationModule", "acronym"),
    "OverallStatus": (*_P, "statusModule", "overallStatus"),
    "WhyStopped": (*_P, "statusModule", "whyStopped"),
    "StartDate": (*_P, "statusModule", "startDateStruct", "date"),
    "PrimaryCompletionDate": (*_P, "statusModule", "primaryCompletionDateStruct", "date"),
    "CompletionDate": (*_P, "statusModule", "completionDateStruct", "date"),
    "StudyFirstPostDate": (*_P, "statusModule", "studyFirstPostDateStruct", "date"),
    "ResultsFirstPostDate": (*_P, "statusModule", "resultsFirstPostDateStruct", "date"),
    "LastUpdatePostDate": (*_P, "statusModule", "lastUpdatePostDateStruct", "date"),
    "Condition": (*_P, "conditionsModule", "conditions"),
    "Keyword": (*_P, "conditionsModule", "keywords"),
    "InterventionName": (*_P, "armsInterventionsModule", "interventions", "[]", "name"),
    "InterventionType": (*_P, "armsInterventionsModule", "interventions", "[]", "type"),
    "InterventionOtherName": (*_P, "armsInterventionsModule", "interventions", "[]", "otherNames"),
    "StudyType": (*_P, "designModule", "studyType"),
    "Phase": (*_P, "designModule", "phases"),
    "EnrollmentCount": (*_P, "designModule", "enrollmentInfo", "count"),
    "EnrollmentType": (*_P, "designModule", "enrollmentInfo", "type"),
    "LeadSponsorName": (*_P, "sponsorCollaboratorsModule", "leadSponsor", "name"),
    "BriefSummary": (*_P, "descriptionModule", "briefSummary"),
    "MinimumAge": (*_P, "eligibilityModule", "minimumAge"),
    "MaximumAge": (*_P, "eligibilityModule", "maximumAge"),
    "EligibilityCriteria": (*_P, "eligibilityModule", "eligibilityCriteria"),
    "HasResults": ("hasResults",),
    "ProtocolSection": ("protocolSection",),
    "ResultsSection": ("resultsSection",),
    "DerivedSection": ("derivedSection",),
    "DocumentSection": ("documentSection",),
}


def _piece(name: str) -> tuple[str, ...] | None:
    if name in PIECES:
        return PIECES[name]
    if name.endswith("Module") and len(name) > len("Module"):
        return (*_P, name[0].lower() + name[1:])  # a module of the protocol section, e.g. StatusModule
    return None


def _project(src: Any, path: tuple[str, ...]) -> Any:
    """The part of ``src`` at ``path`` (nested as in ``src``), or None when it has none."""
    if not path:
        return src
    head, rest = path[0], path[1:]
    if head == "[]":
        if not isinstance(src, list):
            return None
        items = [_project(item, rest) for item in src]
        return [i if i is not None else {} for i in items]
    if not isinstance(src, Mapping) or head not in src:
        return None
    inner = _project(src[head], rest)
    return None if inner is None else {head: inner}


def _merge(into: dict, part: Mapping) -> None:
    for key, value in part.items():
        if key in into and isinstance(into[key], dict) and isinstance(value, Mapping):
            _merge(into[key], value)
        elif key in into and isinstance(into[key], list) and isinstance(value, list):
            for mine, theirs in zip(into[key], value):
                if isinstance(mine, dict) and isinstance(theirs, Mapping):
                    _merge(mine, theirs)
        else:
            into[key] = json.loads(json.dumps(value))  # a copy: answers never alias the collection


# --------------------------------------------------------------------------- Essie, the part searches use

_TOKEN = re.compile(r'\s*(\(|\)|"[^"]*"|\bAND\b|\bOR\b|\bNOT\b|[^\s()"]+)')


def _words(text: object) -> list[str]:
    return re.findall(r"[a-z0-9]+", str(text or "").lower())


def parse_essie(expression: str):
    """An Essie expression as nested tuples: ("or", [...]), ("and", [...]), ("not", x) or ("phrase", words)."""
    tokens = [t for t in _TOKEN.findall(expression) if t.strip()]
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else None

    def take():
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def disjunction():
        parts = [conjunction()]
        while peek() == "OR":
            take()
            parts.append(conjunction())
        return parts[0] if len(parts) == 1 else ("or", parts)

    def conjunction():
        parts = [unary()]
        while peek() not in (None, "OR", ")"):
            if peek() == "AND":
                take()
            parts.append(unary())
        return parts[0] if len(parts) == 1 else ("and", parts)

    def unary():
        if peek() == "NOT":
            take()
            return ("not", unary())
        word = take()
        if word == "(":
            inner = disjunction()
            if peek() == ")":
                take()
            return inner
        if word == ")":
            raise ValueError("unbalanced parenthesis")
        return ("phrase", _words(word.strip('"')))

    if not tokens:
        return ("phrase", [])
    node = disjunction()
    if pos != len(tokens):
        raise ValueError(f"unexpected {tokens[pos]!r}")
    return node


def _matches(node, texts: list[list[str]]) -> bool:
    kind, value = node
    if kind == "or":
        return any(_matches(n, texts) for n in value)
    if kind == "and":
        return all(_matches(n, texts) for n in value)
    if kind == "not":
        return not _matches(value, texts)
    want = value
    return not want or any(words[i:i + len(want)] == want for words in texts for i in range(len(words) - len(want) + 1))


def _get(obj: Any, *path: str) -> Any:
    for name in path:
        obj = obj.get(name) if isinstance(obj, Mapping) else None
    return obj


def _texts(study: Mapping, area: str) -> list[list[str]]:
    ps = study.get("protocolSection") or {}
    ident, conds = _get(ps, "identificationModule") or {}, _get(ps, "conditionsModule") or {}
    titles = [ident.get("briefTitle"), ident.get("officialTitle"), ident.get("acronym")]
    if area == "cond":
        values = [*titles, *(conds.get("conditions") or []), *(conds.get("keywords") or [])]
    elif area == "intr":
        values = []
        for i in _get(ps, "armsInterventionsModule", "interventions") or []:
            values += [i.get("name"), i.get("description"), *(i.get("otherNames") or [])]
    else:  # query.term / query.titles: titles, conditions, summary
        values = [*titles, *(conds.get("conditions") or []), _get(ps, "descriptionModule", "briefSummary")]
    return [_words(v) for v in values if v]


# --------------------------------------------------------------------------- the server


class CtgovEmulator(JsonApiEmulator):
    """The ClinicalTrials.gov API v2 emulator (see the module doc). ``rate_limit`` default: none;
    ``(50, 60.0)`` emulates the reported limit."""

    name = "ctgov-emulator"
    prefix = CTGOV_PATH

    def __init__(self, studies: Iterable[Mapping] = (), *, port: int = 0, rate_limit: tuple[int, float] | None = None,
                 retry_after: float | None = None, faults: Faults = NO_FAULTS):
        super().__init__(port=port, rate_limit=rate_limit, retry_after=retry_after, faults=faults)
        self._studies: dict[str, Mapping] = {}
        self.add_studies(studies)

    def add_studies(self, studies: Iterable[Mapping]) -> None:
        """Add (or replace) studies; lets a test make the register grow between runs."""
        with self._lock:
            for study in studies:
                nct = _get(study, "protocolSection", "identificationModule", "nctId")
                if not isinstance(nct, str):
                    raise ValueError("a study needs protocolSection.identificationModule.nctId")
                self._studies[nct.upper()] = study

    def remove_studies(self, ncts: Iterable[str]) -> None:
        with self._lock:
            for nct in ncts:
                self._studies.pop(nct.upper(), None)

    def utility(self, path: str) -> str | None:
        if path == "studies":
            return "studies"
        if re.fullmatch(r"studies/[Nn][Cc][Tt]0*[1-9]\d{0,7}", path):
            return "study"
        return None

    def answer(self, utility: str, path: str, params: dict[str, str], headers: Mapping[str, str]) -> Answer:
        unknown = sorted(k for k in params if k not in KNOWN_PARAMS and not k.startswith("postFilter."))
        if unknown:
            return _bad(f"`{unknown[0]}` is unknown parameter")
        names = [p.strip() for p in re.split(r"[,|]", params.get("fields", "")) if p.strip()]
        bad_fields = [n for n in names if _piece(n) is None]
        if bad_fields:
            return _bad(f"Parameter 'fields' contains unknown field: '{bad_fields[0]}'")
        pieces = [p for p in map(_piece, names) if p is not None] or None
        if utility == "study":
            nct = path.split("/", 1)[1].upper()
            nct = "NCT" + nct[3:].lstrip("0").rjust(8, "0")
            with self._lock:
                study = self._studies.get(nct)
            if study is None:
                return Answer(404, "text/plain", b"Study not found")
            return _json(self._fields(study, pieces))
        return self._studies_page(params, pieces)

    def _fields(self, study: Mapping, pieces: list | None) -> dict:
        if pieces is None:
            return json.loads(json.dumps(study))
        out: dict = {}
        for path in pieces:
            part = _project(study, path)
            if part is not None:
                _merge(out, part)
        return out

    def search(self, params: Mapping[str, str]) -> list[str]:
        """NCT ids matching the query and filters, in the emulator's order (ascending NCT id)."""
        queries = []
        for name, area in (("query.cond", "cond"), ("query.intr", "intr"), ("query.term", "term"),
                           ("query.titles", "term")):
            if params.get(name, "").strip():
                queries.append((parse_essie(params[name]), area))
        statuses = {s.strip().upper() for s in re.split(r"[,|]", params.get("filter.overallStatus", "")) if s.strip()}
        ids = {s.strip().upper() for s in re.split(r"[,|\s]", params.get("filter.ids", "")) if s.strip()}
        with self._lock:
            studies = list(self._studies.items())
        found = []
        for nct, study in studies:
            if ids and nct not in ids:
                continue
            if statuses and str(_get(study, "protocolSection", "statusModule", "overallStatus")) not in statuses:
                continue
            if all(_matches(node, _texts(study, area)) for node, area in queries):
                found.append(nct)
        return sorted(found)

    def _studies_page(self, params: dict[str, str], pieces: list | None) -> Answer:
        bad = [s for s in re.split(r"[,|]", params.get("filter.overallStatus", "")) if s.strip()
               and s.strip().upper() not in STATUSES]
        if bad:
            return _bad("Invalid value in parameter overallStatus")
        try:
            size = int(params.get("pageSize") or 0)
        except ValueError:
            return _bad("Invalid value in parameter pageSize")
        if size < 0:
            return _bad("Invalid value in parameter pageSize")
        size = min(size or 10, MAX_PAGE)
        try:
            found = self.search(params)
        except ValueError as exc:
            return _bad(f"Invalid query: {exc}")
        signature = _signature(params)
        offset = 0
        if params.get("pageToken"):
            decoded = _decode_token(params["pageToken"])
            if decoded is None or decoded[0] != signature:
                return _bad("pageToken does not match the request's other parameters")
            offset = decoded[1]
        page = found[offset:offset + size]
        out: dict[str, Any] = {"studies": [self._fields(self._studies[n], pieces) for n in page]}
        if params.get("countTotal", "").lower() == "true" and not params.get("pageToken"):
            out["totalCount"] = len(found)
        if len(page) == size:  # the API mints a token whenever a page is full
            out["nextPageToken"] = _encode_token(signature, offset + size)
        return _json(out)


def _bad(message: str) -> Answer:
    return Answer(400, "text/plain", message.encode())


def _json(data: Any) -> Answer:
    return Answer(200, "application/json", json.dumps(data, ensure_ascii=False).encode())


def _signature(params: Mapping[str, str]) -> str:
    """What a page token is bound to: every parameter but the paging ones."""
    kept = sorted((k, v) for k, v in params.items() if k not in PAGING)
    return hashlib.sha256(json.dumps(kept).encode()).hexdigest()[:16]


def _encode_token(signature: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{signature}:{offset}".encode()).decode().rstrip("=")


def _decode_token(token: str) -> tuple[str, int] | None:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        signature, offset = raw.split(":")
        return signature, int(offset)
    except (ValueError, UnicodeDecodeError):
        return None


# --------------------------------------------------------------------------- synthetic studies

_CYCLE = [("COMPLETED", True), ("RECRUITING", False), ("COMPLETED", False), ("NOT_YET_RECRUITING", False),
          ("TERMINATED", False), ("ACTIVE_NOT_RECRUITING", False), ("WITHDRAWN", False), ("UNKNOWN", False)]


def synthetic_studies(n: int, *, conditions: Iterable[str] = ("synthetic condition",),
                      interventions: Iterable[str] = ("synthetic drug",), first: int = 90_000_001,
                      linked_pmids: Mapping[int, list[str]] | None = None) -> list[dict]:
    """``n`` clearly synthetic registrations (titles say so) in the API v2 ``Study`` shape of the recorded
    responses, cycling through statuses (and results posted for some completed ones). ``linked_pmids``:
    position -> PMIDs given as ``RESULT`` references of that study (synthetic PMIDs, for linking tests)."""
    conditions, interventions = list(conditions), list(interventions)
    studies = []
    for i in range(n):
        nct = f"NCT{first + i:08d}"
        status, results = _CYCLE[i % len(_CYCLE)]
        year = 2010 + i % 15
        refs = [{"pmid": p, "type": "RESULT", "citation": f"Synthetic citation of PMID {p} (not a real article)."}
                for p in (linked_pmids or {}).get(i, [])]
        refs.append({"pmid": "90000000", "type": "BACKGROUND", "citation": "Synthetic background reference."})
        study: dict[str, Any] = {
            "protocolSection": {
                "identificationModule": {"nctId": nct, "briefTitle": f"Synthetic registration {nct} generated for "
                                                                    "emulator tests (not a real trial)"},
                "statusModule": {"overallStatus": status, "startDateStruct": {"date": f"{year}-03", "type": "ACTUAL"},
                                 "completionDateStruct": {"date": f"{year + 2}-06-30", "type": "ESTIMATED"},
                                 "lastUpdatePostDateStruct": {"date": f"{year + 3}-01-15", "type": "ACTUAL"}},
                "sponsorCollaboratorsModule": {"leadSponsor": {"name": "Synthetic Sponsor", "class": "OTHER"}},
                "descriptionModule": {"briefSummary": "Synthetic test data."},
                "conditionsModule": {"conditions": conditions},
                "designModule": {"studyType": "INTERVENTIONAL", "phases": ["PHASE2"],
                                 "enrollmentInfo": {"count": 20 + i, "type": "ESTIMATED"}},
                "armsInterventionsModule": {"interventions": [{"type": "DRUG", "name": name} for name in interventions]},
                "referencesModule": {"references": refs},
            },
            "hasResults": results,
        }
        if results:
            study["protocolSection"]["statusModule"]["resultsFirstPostDateStruct"] = {"date": f"{year + 3}-01-15",
                                                                                     "type": "ACTUAL"}
        studies.append(study)
    return studies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reviewkit.testing.ctgov_emulator",
                                     description="Serve a ClinicalTrials.gov API v2 emulator on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--studies", action="append", default=[], metavar="FILE",
                        help="a recorded API answer: one Study, or a page with 'studies'; repeatable")
    parser.add_argument("--synthetic", type=int, default=0, metavar="N", help="add N synthetic studies (not real)")
    args = parser.parse_args(argv)
    studies: list[dict] = []
    for path in args.studies:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        studies += data["studies"] if "studies" in data else [data]
    with CtgovEmulator(studies + synthetic_studies(args.synthetic)) as emu:
        print(f"ClinicalTrials.gov emulator serving {len(emu._studies)} studies; point reviewkit at it with: "
              f"REVIEWKIT_CTGOV_URL={emu.base_url}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
