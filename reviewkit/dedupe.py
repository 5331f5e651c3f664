"""Merge records from every source into one row per publication, and say why.

Input is a records table (columns in docs/architecture.md) holding database
records and records from other methods together. Duplicates are found by, in
order: PMID, DOI, normalised title with the same year and first author, and a
fuzzy title match (rapidfuzz) with the same year and first author. Two records
whose PMIDs (or DOIs) differ are never merged: they are distinct entries in the
source, however alike their titles. Every merge is listed with its rule; pairs
that look alike but do not meet a rule (different year, different first author,
conflicting identifiers, an erratum, retraction, reply or comment about the
other) go to a review list and stay separate until a person decides.

Cost grows about linearly with the number of records: identifiers and exact
titles are looked up in dictionaries, and fuzzy titles are compared only
within blocks of the same year and first author (all pairs the merge rule can
accept) and within a sorted neighbourhood (for the review list); see
:func:`_fuzzy_pass`.

A trial registration (``source`` ClinicalTrials.gov) has no PMID or DOI of its
own; it names its publications (``linked_pmids``, ``linked_dois``). A
registration and its publication are one study, so a registration is merged
into the record of the first publication it links that the records hold
(rules "registration's linked PMID" / "registration's linked DOI"), and the
record keeps it in ``merged_ids``. A registration linking no record found
stays a record of its own.

Which record is kept: a database record before a registration, and both before
a record from another method (PRISMA 2020 counts a citation-searched record
that the databases already found as a duplicate, not as a new record), then the
earlier row. The kept row gathers the provenance of everything merged into it
(``searches`` and ``merged_ids``).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process

DATABASE_SOURCES = frozenset({"PubMed"})
REGISTER_SOURCES = frozenset({"ClinicalTrials.gov"})
#: PRISMA 2020's left column: "identification of studies via databases and registers"
SEARCHED_SOURCES = DATABASE_SOURCES | REGISTER_SOURCES

#: score (0-100, rapidfuzz ``token_sort_ratio`` on normalised titles) from which a
#: pair with the same year and first author is merged.
MERGE_SCORE = 97.0
#: score from which a pair that is not merged is listed for a person to review.
REVIEW_SCORE = 90.0

MERGE_COLUMNS = ["kept_id", "removed_id", "removed_source", "rule", "score"]
REVIEW_COLUMNS = ["record_id_a", "record_id_b", "score", "why_uncertain"]

# Items that point at another article (errata, corrections, retractions,
# replies, letters, comments) share most of its title, often its authors and
# year, but are not a second copy of it; merging would lose them. Matched on
# normalised titles: a prefix ("Re: ...", "Reply to: ..."), or anywhere for
# the notice words and Web of Science's correction entries "(vol 5, pg 10, 2020)".
# A true copy of an article carries the same words, so only a pair where one
# side matches is held back, for a person to review.
# (Two patterns: one alternation anchored with ^ would be tried at every position.)
_NOTICE_START = re.compile(r"(errata|retracted|expression of concern|notice of retraction|in reply|reply|re|"
                           r"response to|comment on|commentary on)\b")
_NOTICE_ANYWHERE = re.compile(r"\b(erratum|corrigendum|correction|retraction)\b|\bvol \d+ pg \d+\b")
# Reference lists write "Krupitsky EM et al." or "Krupitsky et al."; the
# surname must not pick up "et al".
_ET_AL = re.compile(r"(^|[\s,]+)et\.?\s+al\.?\s*$", re.I)


@dataclass(frozen=True)
class DedupeResult:
    """``records``: one row per publication (input columns plus ``merged_ids``,
    the record ids merged into it); ``merges``: one row per removed record
    (:data:`MERGE_COLUMNS`); ``review``: uncertain pairs left unmerged
    (:data:`REVIEW_COLUMNS`)."""

    records: pd.DataFrame
    merges: pd.DataFrame
    review: pd.DataFrame


# ASCII punctuation to spaces, letters to lower case, in one C-level pass.
_ASCII_FOLD = str.maketrans({chr(c): (chr(c).lower() if chr(c).isalnum() else " ") for c in range(128)})


def normalise_title(title: str | None) -> str:
    """Lower case, accents and punctuation removed, whitespace collapsed."""
    text = title if isinstance(title, str) else ""
    if not text.isascii():  # most titles are ASCII: decomposing every one would dominate the run
        text = unicodedata.normalize("NFKD", text)
        text = re.sub(r"[^a-z0-9]+", " ", "".join(ch for ch in text if not unicodedata.combining(ch)).lower())
    return " ".join(text.translate(_ASCII_FOLD).split())


def _surname(first_author) -> str:
    """Surname of a ``"Lastname Initials"`` author, normalised ("" when unknown)."""
    if not isinstance(first_author, str) or not first_author.strip():
        return ""
    parts = _ET_AL.sub("", first_author).split()
    if not parts:
        return ""
    surname = " ".join(parts[:-1]) if len(parts) > 1 else parts[0]
    return normalise_title(surname)


def _clean_id(value) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return None
    text = str(value).strip().lower()
    return text or None


class _Clusters:
    """Union-find over row positions that refuses to join clusters whose PMIDs
    or DOIs disagree, so a cluster has at most one of each (kept on its root;
    plain values, not a set per row: 100,000 sets would cost the garbage collector)."""

    def __init__(self, pmids: list, dois: list) -> None:
        self.parent = list(range(len(pmids)))
        self.pmid, self.doi = list(pmids), list(dois)

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def conflict(self, a: int, b: int) -> str | None:
        ra, rb = self.find(a), self.find(b)
        if self.pmid[ra] and self.pmid[rb] and self.pmid[ra] != self.pmid[rb]:
            return "different PMIDs"
        if self.doi[ra] and self.doi[rb] and self.doi[ra] != self.doi[rb]:
            return "different DOIs"
        return None

    def union(self, keep: int, other: int) -> None:
        rk, ro = self.find(keep), self.find(other)
        if rk == ro:
            return
        # The root is always the preferred row, so the cluster keeps it.
        root, child = (rk, ro) if rk < ro else (ro, rk)
        self.parent[child] = root
        self.pmid[root] = self.pmid[root] or self.pmid[child]
        self.doi[root] = self.doi[root] or self.doi[child]


def deduplicate(records: pd.DataFrame) -> DedupeResult:
    """One row per publication, with the merge log and the review list (see module doc)."""
    if records.empty:
        return DedupeResult(records.assign(merged_ids=[[] for _ in range(len(records))]),
                            pd.DataFrame(columns=MERGE_COLUMNS), pd.DataFrame(columns=REVIEW_COLUMNS))
    is_db, is_register = records["source"].isin(DATABASE_SOURCES), records["source"].isin(REGISTER_SOURCES)
    # Preferred rows first: the union keeps the lowest position as the root.
    ordered = pd.concat([records[is_db], records[is_register], records[~is_db & ~is_register]]).reset_index(drop=True)
    ids = ordered["record_id"].tolist()
    # Python lists, not per-element pandas access: this runs on every record of a search.
    pmids = [_clean_id(v) for v in ordered["pmid"].tolist()]
    dois = [_clean_id(v) for v in ordered["doi"].tolist()]
    titles = [normalise_title(t) for t in ordered["title"].tolist()]
    years = [None if y is pd.NA else y for y in pd.array(ordered["year"], dtype="Int64").tolist()]
    first_authors = ordered["first_author"].tolist()
    surname_of = {a: _surname(a) for a in set(first_authors)}  # authors recur: each name is parsed once
    surnames = [surname_of[a] for a in first_authors]

    @functools.cache
    def is_notice(i: int) -> bool:  # asked only of rows about to merge: a few, not every title
        return bool(_NOTICE_START.match(titles[i]) or _NOTICE_ANYWHERE.search(titles[i]))

    clusters = _Clusters(pmids, dois)
    rule_of: dict[int, tuple[str, float]] = {}
    review: dict[tuple[int, int], tuple[float, str]] = {}

    def try_merge(a: int, b: int, rule: str, score: float) -> None:
        if clusters.find(a) == clusters.find(b):
            return
        why_not = clusters.conflict(a, b)
        if why_not is None and is_notice(a) != is_notice(b):
            why_not = "one is a notice, reply or comment about the other"
        if why_not:
            review.setdefault((a, b), (score, f"{rule} match but {why_not}"))
            return
        absorbed = max(clusters.find(a), clusters.find(b))
        clusters.union(a, b)
        rule_of[absorbed] = (rule, score)

    holder: dict[str, dict[str, int]] = {}  # rule -> identifier -> the first row holding it
    for key, rule in ((pmids, "PMID"), (dois, "DOI")):
        first = holder.setdefault(rule, {})
        for i, value in enumerate(key):
            if value:
                if value in first:
                    try_merge(first[value], i, rule, 100.0)
                else:
                    first[value] = i

    _link_registrations(ordered, holder, clusters, try_merge)

    # Keys are strings, not tuples: tuples are containers the garbage collector tracks, and 100,000 of
    # them (with the lists below) set off full collections over every list the records table holds.
    exact: dict[str, int] = {}
    by_title: dict[str, int] = {}
    for i, title in enumerate(titles):
        if not title:
            continue
        signature = f"{title}\x1f{years[i]}\x1f{surnames[i]}"
        if years[i] is not None and surnames[i] and signature in exact:
            try_merge(exact[signature], i, "title, year and first author", 100.0)
        else:
            exact.setdefault(signature, i)
        a = by_title.setdefault(title, i)
        if a != i and clusters.find(a) != clusters.find(i):
            review.setdefault((a, i), (100.0, _why_not_same(years, surnames, a, i)))

    _fuzzy_pass(titles, years, surnames, clusters, try_merge, review)

    # Pairs that ended up in one cluster by another route are not uncertain.
    review = {k: v for k, v in review.items() if clusters.find(k[0]) != clusters.find(k[1])}

    # Groups by sorting the roots (no list per record: see the keys above). A root is its group's lowest
    # position, so the groups come in the order of their roots.
    roots = np.fromiter((clusters.find(i) for i in range(len(ids))), dtype=np.int64, count=len(ids))
    order = np.argsort(roots, kind="stable")
    kept, starts = np.unique(roots[order], return_index=True)
    ends = np.append(starts[1:], len(order))
    # Whole-column work: per-row pandas access costs milliseconds a row, i.e.
    # minutes on a 100,000-record search.
    sources, provenance = ordered["source"].tolist(), ordered["searches"].tolist()
    merges: list[dict] = []
    searches: list[list[str]] = []
    merged_ids: list[list[str]] = []
    for root, start, end in zip(kept.tolist(), starts.tolist(), ends.tolist()):
        own = provenance[root]
        if end - start == 1 and isinstance(own, list) and len(set(own)) == len(own):
            searches.append(own)  # a record nothing merged into (most): its searches as they are
            merged_ids.append([])
            continue
        group = order[start:end].tolist()
        found: list[str] = []
        for i in group:
            for s in provenance[i] or []:
                if s not in found:
                    found.append(s)
        searches.append(found)
        merged_ids.append([ids[i] for i in group if i != root])
        for i in group[1:]:
            rule, score = rule_of[i]  # every absorbed row was a cluster root once
            merges.append({"kept_id": ids[root], "removed_id": ids[i], "removed_source": sources[i],
                           "rule": rule, "score": score})
    out = ordered.iloc[kept].reset_index(drop=True)
    out["searches"], out["merged_ids"] = searches, merged_ids
    review_rows = [{"record_id_a": ids[a], "record_id_b": ids[b], "score": round(score, 1), "why_uncertain": why}
                   for (a, b), (score, why) in sorted(review.items())]
    return DedupeResult(out, pd.DataFrame(merges, columns=MERGE_COLUMNS),
                        pd.DataFrame(review_rows, columns=REVIEW_COLUMNS))


def _link_registrations(ordered: pd.DataFrame, holder: dict[str, dict[str, int]], clusters: _Clusters,
                        try_merge) -> None:
    """Merge each registration into the first record it links (PMID first, then DOI); see the module doc."""
    if "linked_pmids" not in ordered.columns:
        return
    for i in np.flatnonzero(ordered["source"].isin(REGISTER_SOURCES).to_numpy()):
        links = [("PMID", p) for p in _listed(ordered.at[i, "linked_pmids"])]
        links += [("DOI", d) for d in _listed(ordered.at[i, "linked_dois"] if "linked_dois" in ordered else None)]
        for rule, value in links:
            target = holder[rule].get(str(value).strip().lower())
            if target is not None and clusters.find(target) != clusters.find(int(i)):
                try_merge(target, int(i), f"registration's linked {rule}", 100.0)
                if clusters.find(target) == clusters.find(int(i)):
                    break  # one study: its other publications stay records of their own


def _listed(value) -> list:
    return list(value) if isinstance(value, (list, tuple, np.ndarray)) else []


def _why_not_same(years: list, surnames: list, a: int, b: int) -> str:
    """Why a pair with alike titles was not merged by the title rules."""
    reasons = []
    if years[a] is None or years[b] is None:
        reasons.append("a year is missing")
    elif years[a] != years[b]:
        reasons.append(f"years differ ({years[a]} vs {years[b]})")
    if not surnames[a] or not surnames[b]:
        reasons.append("a first author is missing")
    elif surnames[a] != surnames[b]:
        reasons.append("first authors differ")
    return "similar titles but " + " and ".join(reasons) if reasons else "similar titles below the merge score"


#: fuzzy matching ignores titles shorter than this: short generic titles
#: ("Ketamine", "Reply") look alike without being the same article.
MIN_FUZZY_TITLE = 20
#: sorted-neighbourhood window: each title is compared with the titles up to
#: this many places after it in each sort order (see :func:`_fuzzy_pass`).
WINDOW = 20
#: at most this many neighbours per record inside one (year, first author)
#: block; a larger block (unknown in real searches) is compared as a sorted
#: neighbourhood of this width, so time stays bounded on hostile input.
BLOCK_WINDOW = 500
_SCORE_BATCH = 2**20  # candidate pairs scored per rapidfuzz call: bounds memory on hostile input


_LETTERS = np.full(256, 36, dtype=np.int64)  # normalised titles hold a-z, 0-9 and spaces
_LETTERS[np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8)] = np.arange(36)


def _letter_counts(texts: list[str], chunk: int = 2_000) -> np.ndarray:
    """How often each of 37 symbols occurs in each text, capped at 255 (differences of capped
    counts still bound the distance from below, and fit in small integers)."""
    out = np.zeros((len(texts), 37), dtype=np.int16)
    for start in range(0, len(texts), chunk):  # chunks bound the per-character arrays
        part = texts[start:start + chunk]
        sizes = np.fromiter(map(len, part), dtype=np.int64, count=len(part))
        owner = np.repeat(np.arange(len(part)), sizes)
        symbol = _LETTERS[np.frombuffer("".join(part).encode("ascii", "replace"), dtype=np.uint8)]
        counts = np.bincount(owner * 37 + symbol, minlength=len(part) * 37).reshape(-1, 37)
        out[start:start + len(part)] = np.minimum(counts, 255)
    return out


def _fuzzy_pass(titles, years, surnames, clusters, try_merge, review) -> None:
    """Score candidate pairs of titles and merge or list them.

    Candidates are chosen so that cost grows with the number of records, not
    with its square (every title against every other took minutes at 100,000):

    * blocking: every pair within a block of the same year and first author.
      These are the only pairs the merge rule can accept, so no merge is missed.
    * sorted neighbourhood, for the review list: pairs at most :data:`WINDOW`
      places apart when the titles are sorted as written, by their sorted
      tokens, and by those strings reversed (a difference near the start of
      one order is near the end of another). A pair must be of the same or
      the next year (an e-pub year often differs from the print year), or
      have a side without a year.
    """
    positions = [i for i, title in enumerate(titles) if len(title) >= MIN_FUZZY_TITLE]
    if len(positions) < 2:
        return
    rows = np.array(positions, dtype=np.int64)
    # token_sort_ratio is ratio on tokens sorted once here (titles are already normalised).
    keys = [" ".join(sorted(titles[i].split())) for i in positions]
    scored = np.array(keys, dtype=object)
    year = np.array([-1 if years[i] is None else years[i] for i in positions], dtype=np.int64)
    ids: dict[str, int] = {}  # string keys, as in deduplicate: tuples would be tracked by the garbage collector
    block = np.array([ids.setdefault(f"{years[i]}\x1f{surnames[i]}", len(ids)) if years[i] is not None and surnames[i]
                      else -1 for i in positions], dtype=np.int64)

    def order(key) -> np.ndarray:
        return np.array(sorted(range(len(rows)), key=key), dtype=np.int64)

    by_key = order(keys.__getitem__)
    length = np.array([len(k) for k in keys], dtype=np.int64)
    counts = _letter_counts(keys)
    found: dict[tuple[int, int], float] = {}
    queue: list[tuple[np.ndarray, np.ndarray]] = []

    def consider(a: np.ndarray, b: np.ndarray) -> None:
        # ratio = 100 * (1 - indel distance / total length), and the distance is at
        # least the difference in length, and at least the letters one title has and
        # the other lacks: most pairs fail these cheap bounds, and are not scored.
        allowed = (100 - REVIEW_SCORE) * (length[a] + length[b])
        close = np.abs(length[a] - length[b]) * 100 <= allowed
        a, b, allowed = a[close], b[close], allowed[close]
        close = np.abs(counts[a] - counts[b]).sum(axis=1) * 100 <= allowed
        queue.append((a[close], b[close]))
        if sum(len(q[0]) for q in queue) >= _SCORE_BATCH:
            score()

    def score() -> None:
        """Score the queued pairs once each (the orders find many of the same), in one call."""
        if not queue:
            return
        a, b = np.concatenate([q[0] for q in queue]), np.concatenate([q[1] for q in queue])
        queue.clear()
        lo, hi = np.divmod(np.unique(np.minimum(a, b) * len(rows) + np.maximum(a, b)), len(rows))
        scores = process.cpdist(scored[lo], scored[hi], scorer=fuzz.ratio, score_cutoff=REVIEW_SCORE, workers=-1)
        for r in np.flatnonzero(scores):
            found[(int(rows[lo[r]]), int(rows[hi[r]]))] = float(scores[r])

    # Blocks, each sorted by title key: a block's members are contiguous, and
    # the rows of blocks with at most `step` members drop out as step grows.
    members = by_key[np.argsort(block[by_key], kind="stable")]
    members = members[block[members] >= 0]
    size = np.bincount(block[members], minlength=len(ids))
    for step in range(1, BLOCK_WINDOW + 1):
        members = members[size[block[members]] > step]
        if len(members) <= step:
            break
        a, b = members[:-step], members[step:]
        same = block[a] == block[b]
        consider(a[same], b[same])

    for ordered in (order(lambda r: titles[positions[r]]), by_key, order(lambda r: keys[r][::-1])):
        for step in range(1, min(WINDOW, len(ordered) - 1) + 1):
            a, b = ordered[:-step], ordered[step:]
            near = (np.abs(year[a] - year[b]) <= 1) | (year[a] < 0) | (year[b] < 0)
            consider(a[near], b[near])
    score()

    # Best matches first, so that when a cluster can take only one of two
    # candidates (their identifiers conflict), it takes the closer one.
    for (a, b), value in sorted(found.items(), key=lambda item: (-item[1], item[0])):
        if clusters.find(a) == clusters.find(b):
            continue
        same_work = (value >= MERGE_SCORE and years[a] is not None and years[a] == years[b]
                     and surnames[a] and surnames[a] == surnames[b])
        if same_work:
            try_merge(a, b, "fuzzy title, same year and first author", round(value, 1))
        else:
            review.setdefault((a, b), (value, _why_not_same(years, surnames, a, b)))
