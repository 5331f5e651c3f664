"""PubMed XML (``PubmedArticleSet``) → one row per article, streamed.

Reads EFetch responses and the files NCBI ships (baseline and update files,
``.xml.gz``): gzip is recognised by its first bytes, whatever the file is
called, and inflated as it is read. A ``DeleteCitation`` (update files list
the PMIDs NCBI has withdrawn) is reported, not dropped: see ``deleted`` and
``attrs["deleted_pmids"]``.

Parsing uses lxml's ``iterparse`` with the DTD never loaded, no network, and
entities left unexpanded, so untrusted XML cannot fetch anything or blow up
(an internal DTD subset that declares entities is refused outright). Each
article element is cleared once read, so memory stays flat however large the
file is. Inflating is bounded too: gzip data that expands more than
``MAX_GZIP_RATIO`` times (a decompression bomb) is refused.

A large file given by path (``PARALLEL_MIN_BYTES`` or more) is cut at article
start tags into segments of about ``SEGMENT_BYTES``, each parsed by the same
code in a worker process (forked, on Linux), and rows come back in document
order. A plain file is cut by byte offsets that the workers read themselves;
a gzip file is inflated here and the segments' bytes are sent to the workers.
Each segment is parsed with the file's own prolog, so the safety checks run
on every one. Should a cut not fall between articles (a start tag inside a
comment or CDATA makes a segment malformed) or a worker fail, the file is
parsed again in this process from where the rows stopped, so the result, or
the error and its line number, is exactly what a single-process parse gives.

Columns of the returned frame (see docs/architecture.md):
pmid, doi, pmcid, title, abstract, authors, first_author, year, journal,
journal_iso, volume, issue, pages, language, publication_types, mesh_terms,
is_human, is_animal, comments_corrections (PubMed's links to notices about the
article or from a notice to its article, ``"RetractionIn PMID 123"``: see
:data:`UPDATE_LINKS`; citations and comments are not kept).
"""

from __future__ import annotations

import gzip
import io
import logging
import multiprocessing
import os
import re
import sys
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from itertools import islice
from pathlib import Path
from typing import IO, Protocol, cast

import pandas as pd
from lxml import etree
from tqdm.auto import tqdm

from .errors import EntrezError, ReviewkitError

logger = logging.getLogger(__name__)

COLUMNS = [
    "pmid", "doi", "pmcid", "title", "abstract", "authors", "first_author", "year",
    "journal", "journal_iso", "volume", "issue", "pages", "language",
    "publication_types", "mesh_terms", "is_human", "is_animal", "comments_corrections",
]
#: CommentsCorrections types that say an article was retracted, corrected or is under concern (or that
#: a notice does so to another article); PubMed's "Cites", "CommentIn" and the like are not kept.
UPDATE_LINKS = ("RetractionIn", "RetractionOf", "RetractedandRepublishedIn", "RetractedandRepublishedFrom",
                "ExpressionOfConcernIn", "ExpressionOfConcernFor", "ErratumIn", "ErratumFor",
                "CorrectedandRepublishedIn", "CorrectedandRepublishedFrom")
_ARTICLE_TAGS = ("PubmedArticle", "PubmedBookArticle")
_YEAR = re.compile(r"(1[89]\d\d|20\d\d)")
_ARTICLE_STARTS = (b"<PubmedArticle>", b"<PubmedBookArticle>")  # neither element has attributes
_SET_END = b"</PubmedArticleSet>"

PARALLEL_MIN_BYTES = 32 * 2**20
SEGMENT_BYTES = 8 * 2**20  # about 500 typical records: small enough to keep memory flat
_MAX_WORKERS = 4

GZIP_MAGIC = b"\x1f\x8b"
#: gzip data may inflate to at most this many times the compressed bytes read so
#: far (plus ``GZIP_SLACK_BYTES``). NCBI's XML inflates 4-8 times (measured on the
#: recorded responses in tests/fixtures/eutils); a decompression bomb, ~1000 times.
MAX_GZIP_RATIO = 100
GZIP_SLACK_BYTES = 16 * 2**20
#: a gzip file is split between workers from this compressed size on (its XML is
#: then about PARALLEL_MIN_BYTES or more).
PARALLEL_MIN_GZIP_BYTES = PARALLEL_MIN_BYTES // 8


class PubmedXMLError(ReviewkitError):
    """The document is not PubMed XML, or is refused as unsafe."""


Source = str | os.PathLike | bytes | IO[bytes]


def read_pubmed_xml(source: Source, *, name: str | None = None, workers: int | None = None,
                    progress: bool | None = None) -> pd.DataFrame:
    """Parse PubMed XML from a path, bytes or a binary file object into a DataFrame.

    Parameters
    ----------
    source
        Path, bytes or binary file object; XML or gzip-compressed XML
        (``.xml.gz`` as NCBI ships its baseline and update files).
    name
        What error messages call the source (default: the path).
    workers
        Processes for a large file given by path (default: one per core, at
        most 4); ``workers=1`` parses in this process.
    progress
        Show a bar of bytes read (terminal or notebook); by default only for a
        source of ``PARALLEL_MIN_BYTES`` or more, which takes seconds.

    Returns
    -------
    pandas.DataFrame
        One row per PubmedArticle or PubmedBookArticle (:data:`COLUMNS`).
        ``attrs["deleted_pmids"]`` lists the PMIDs of the document's
        ``DeleteCitation`` elements in document order (empty when none), so an
        update file can be applied to a local set.
    """
    deleted: list[str] = []
    frame = records_frame(iter_pubmed_xml(source, name=name, workers=workers, progress=progress, deleted=deleted))
    frame.attrs["deleted_pmids"] = deleted
    return frame


def records_frame(rows) -> pd.DataFrame:
    # object dtype keeps missing text as None (pandas 3 would infer str and turn None into NaN).
    frame = pd.DataFrame(list(rows), columns=COLUMNS, dtype=object)
    frame["year"] = frame["year"].astype("Int64")
    frame["is_human"] = frame["is_human"].astype(bool)
    frame["is_animal"] = frame["is_animal"].astype(bool)
    return frame


def iter_pubmed_xml(source: Source, *, name: str | None = None, workers: int | None = None,
                    progress: bool | None = None, deleted: list[str] | None = None) -> Iterator[dict]:
    """Yield one dict per PubmedArticle or PubmedBookArticle, in document order.

    ``name``, ``workers`` and ``progress`` as for :func:`read_pubmed_xml`: only
    a path of at least ``PARALLEL_MIN_BYTES`` (``PARALLEL_MIN_GZIP_BYTES`` if
    gzip) is split between processes. ``deleted``, when given, receives the
    PMIDs of ``DeleteCitation`` elements as they are read.
    """
    label = name or (str(source) if isinstance(source, (str, os.PathLike)) else "PubMed XML")
    workers = _worker_count(workers)
    asked, deleted = deleted is not None, [] if deleted is None else deleted
    size = _size(source)
    show = progress if progress is not None else (size or 0) >= PARALLEL_MIN_BYTES
    with tqdm(total=size, desc=f"parse {label}", unit="B", unit_scale=True, unit_divisor=1024,
              disable=not show) as bar:
        jobs = _jobs(Path(source), label, size) if workers > 1 and isinstance(source, (str, os.PathLike)) else None
        if jobs is None:
            yield from _iter_stream(source, label, bar, deleted)
        else:
            done, known = 0, len(deleted)
            try:
                for row in _iter_segments(jobs, workers, bar, deleted):
                    yield row
                    done += 1
            except Exception:  # noqa: BLE001  (a bad cut or a failed worker: the single-process parse decides)
                bar.reset(total=size)
                del deleted[known:]  # the parse below reads the whole document again
                yield from islice(_iter_stream(source, label, bar, deleted), done, None)
    if deleted and not asked:  # withdrawn records must not vanish without a word
        logger.warning("%s: %d DeleteCitation PMID(s) not applied (e.g. %s); read_pubmed_xml lists them in "
                       "attrs['deleted_pmids']", label, len(deleted), deleted[0])


def _size(source: Source) -> int | None:
    if isinstance(source, (bytes, bytearray)):
        return len(source)
    if isinstance(source, (str, os.PathLike)):
        try:
            return os.stat(source).st_size
        except OSError:
            return None  # the parse reports it
    return None


def _worker_count(workers: int | None) -> int:
    if workers is None:
        # Forked workers only: spawn would re-run an unguarded user script in each worker.
        if not sys.platform.startswith("linux"):
            return 1
        workers = min(os.cpu_count() or 1, _MAX_WORKERS)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be a whole number of at least 1, not {workers!r}")
    return workers


# A job is (how far the source has been read when its rows are in, function, arguments).
_Job = tuple[int, Callable[..., tuple[list[dict], list[str]]], tuple]


def _jobs(path: Path, label: str, size: int | None) -> Iterator[_Job] | None:
    """The segments of a large file as jobs for the workers, or None to parse it in this process."""
    if size is None:
        return None  # unreadable: the single-process parse reports it
    try:
        with open(path, "rb") as fh:
            compressed = fh.read(len(GZIP_MAGIC)) == GZIP_MAGIC
    except OSError:
        return None
    if compressed:
        return _gzip_jobs(path, label) if size >= PARALLEL_MIN_GZIP_BYTES else None
    plan = _segments(path, size)
    if plan is None:
        return None
    prolog, ranges = plan
    return ((end, _parse_range, (path, label, prolog, start, end, end == size)) for start, end in ranges)


def _segments(path: Path, size: int | None) -> tuple[bytes, list[tuple[int, int]]] | None:
    """The prolog and (start, end) byte ranges cut at article start tags, or None to parse whole."""
    if size is None or size < PARALLEL_MIN_BYTES:
        return None  # small, or unreadable: the single-process parse reports that
    with open(path, "rb") as fh:
        first = _next_article(fh, 0, size)
        if first is None:
            return None
        fh.seek(0)
        prolog = fh.read(first)
        starts = [first]
        while (cut := _next_article(fh, starts[-1] + SEGMENT_BYTES, size)) is not None:
            starts.append(cut)
    if len(starts) < 2:
        return None
    return prolog, list(zip(starts, starts[1:] + [size]))


def _next_article(fh: IO[bytes], pos: int, size: int, window: int = 2**20) -> int | None:
    """Offset of the first article start tag at or after pos, reading a window at a time."""
    overlap = max(map(len, _ARTICLE_STARTS)) - 1
    while pos < size:
        fh.seek(pos)
        chunk = fh.read(window)
        if (hit := _first_article(chunk)) >= 0:
            return pos + hit
        if len(chunk) < window:
            return None
        pos += window - overlap
    return None


def _first_article(data: bytes | bytearray, start: int = 0) -> int:
    """Offset of the first article start tag in data at or after start, -1 if none."""
    hits = [i for i in (data.find(tag, start) for tag in _ARTICLE_STARTS) if i >= 0]
    return min(hits) if hits else -1


class _NoCut(Exception):
    """The inflated document has no article start tag to cut at: parse it in one process."""


def _gzip_jobs(path: Path, label: str, chunk: int = 2**20) -> Iterator[_Job]:
    """Inflate here, cut the XML at article start tags, and hand each segment's bytes to a worker."""
    overlap = max(map(len, _ARTICLE_STARTS)) - 1
    with open(path, "rb") as raw:
        counted = _Counted(raw)
        xml = _reader(counted, label)
        buffer = bytearray()
        while (first := _first_article(buffer)) < 0:
            data = xml.read(chunk)
            if not data or len(buffer) > SEGMENT_BYTES:
                raise _NoCut  # no article, or a prolog larger than a segment: nothing worth splitting
            buffer += data
        prolog, body = bytes(buffer[:first]), buffer[first:]
        scanned = 0  # the search for the next cut resumes here
        more = True
        while more:
            data = xml.read(chunk)
            body += data
            more = bool(data)
            while len(body) > SEGMENT_BYTES:
                cut = _first_article(body, max(SEGMENT_BYTES, scanned - overlap))
                if cut < 0:
                    scanned = len(body)
                    break
                yield counted.count, _parse_document, (label, prolog + bytes(body[:cut]) + _SET_END)
                del body[:cut]
                scanned = 0
        yield counted.count, _parse_document, (label, prolog + bytes(body))  # the file's own ending


def _iter_segments(jobs: Iterator[_Job], workers: int, bar: tqdm, deleted: list[str]) -> Iterator[dict]:
    """Rows of every segment in order, with at most two segments per worker in flight."""
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
    submissions = ((end, pool.submit(fn, *args)) for end, fn, args in jobs)  # lazy: only what is in flight is queued
    try:
        pending = deque(islice(submissions, 2 * workers))
        while pending:
            end, future = pending.popleft()
            rows, gone = future.result()
            pending.extend(islice(submissions, 1))
            deleted.extend(gone)
            yield from rows
            bar.update(end - bar.n)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _parse_range(path: Path, label: str, prolog: bytes, start: int, end: int, last: bool):
    """One segment of a plain file as a document of its own: the prolog, its articles, the closing tag."""
    with open(path, "rb") as fh:
        fh.seek(start)
        body = fh.read(end - start)
    # The last segment carries the file's real ending, so a truncated file still fails.
    return _parse_document(label, prolog + body + (b"" if last else _SET_END))


def _parse_document(label: str, document: bytes) -> tuple[list[dict], list[str]]:
    deleted: list[str] = []
    return list(_iter_stream(document, label, deleted=deleted)), deleted


class _Readable(Protocol):
    def read(self, size: int = -1) -> bytes: ...


class _Counted:
    """A binary file that counts the bytes read from it, and moves a progress bar if given one."""

    def __init__(self, fh: _Readable, bar: tqdm | None = None):
        self._fh, self._bar, self.count = fh, bar, 0

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        self.count += len(data)
        if self._bar is not None:
            self._bar.update(len(data))
        return data


class _Rejoined:
    """A file whose first bytes were read ahead (to look for the gzip magic), served again first."""

    def __init__(self, head: bytes, fh: _Readable):
        self._head, self._fh = head, fh

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._fh.read(size)
        if size is None or size < 0:
            data, self._head = self._head + self._fh.read(), b""
        else:  # a short read is allowed; readers ask again
            data, self._head = self._head[:size], self._head[size:]
        return data


class _Inflated:
    """Gzip data inflated as it is read, refused once it inflates more than ``MAX_GZIP_RATIO`` times."""

    def __init__(self, fh: _Readable, label: str):
        self._compressed = _Counted(fh)
        self._gzip = gzip.GzipFile(fileobj=cast(IO[bytes], self._compressed), mode="rb")
        self._label, self._inflated = label, 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:  # read all, still a bounded piece at a time
            return b"".join(iter(lambda: self.read(2**20), b""))
        try:
            data = self._gzip.read(size)
        except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
            raise PubmedXMLError(f"{self._label}: damaged gzip data ({exc})") from None
        self._inflated += len(data)
        if self._inflated > MAX_GZIP_RATIO * self._compressed.count + GZIP_SLACK_BYTES:
            raise PubmedXMLError(f"{self._label}: refused, the gzip data inflates more than {MAX_GZIP_RATIO} "
                                 f"times (possible decompression bomb)")
        return data


def _reader(fh: _Readable, label: str) -> _Readable:
    """The XML bytes of ``fh``: as they are, or inflated when they start with the gzip magic."""
    head = fh.read(len(GZIP_MAGIC))
    rejoined = _Rejoined(head, fh)
    return _Inflated(rejoined, label) if head == GZIP_MAGIC else rejoined


def _iter_stream(source: Source, label: str, bar: tqdm | None = None,
                 deleted: list[str] | None = None) -> Iterator[dict]:
    fh, close = _open(source)
    reader = _reader(fh if bar is None or bar.disable else _Counted(fh, bar), label)
    try:
        # Only article end events reach Python (lxml filters by tag in C): that is most of the speed.
        context = etree.iterparse(
            reader, events=("end",), tag=(*_ARTICLE_TAGS, "DeleteCitation"), load_dtd=False, no_network=True,
            resolve_entities=False, huge_tree=False,
        )
        checked = False
        for _, elem in context:
            if not checked:
                _check_root(elem.getroottree().getroot(), label)
                checked = True
            if elem.tag == "DeleteCitation":
                if deleted is not None:
                    deleted.extend(_leaf_list(elem, "PMID"))
            else:
                row = _book_row(elem) if elem.tag == "PubmedBookArticle" else _article_row(elem)
                if row is None or not row["pmid"] or not row["pmid"].isdigit():
                    raise PubmedXMLError(f"{label}: the <{elem.tag}> at line {elem.sourceline} lacks "
                                         f"{_REQUIRED[elem.tag]}, or its PMID is not a number; not PubMed XML")
                yield row
            # Free what was read: the element and the siblings before it.
            elem.clear(keep_tail=False)
            parent = elem.getparent()
            while parent is not None and elem.getprevious() is not None:
                del parent[0]
        if not checked:
            if context.root is None:
                raise PubmedXMLError(f"{label}: empty document, not PubMed XML")
            _check_root(context.root, label)
    except etree.XMLSyntaxError as exc:
        raise PubmedXMLError(f"{label}: not well-formed XML ({exc.msg}, line {exc.lineno})") from None
    finally:
        if close:
            fh.close()


def _open(source: Source) -> tuple[IO[bytes], bool]:
    if isinstance(source, (bytes, bytearray)):
        return io.BytesIO(source), True
    if isinstance(source, (str, os.PathLike)):
        try:
            return open(Path(source), "rb"), True
        except FileNotFoundError:
            raise PubmedXMLError(f"file not found: {source}") from None
    return source, False


def _check_root(root: etree._Element, label: str) -> None:
    docinfo = root.getroottree().docinfo
    dtd = docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):
        raise PubmedXMLError(f"{label}: refused, the document declares XML entities (possible entity bomb)")
    if root.tag == "PubmedArticleSet":
        return
    if root.tag in ("eFetchResult", "eSearchResult", "ERROR"):
        # NCBI reports some errors inside a 200 body; surface the server's words.
        raise EntrezError(f"{label}: E-utilities returned an error instead of records")
    raise PubmedXMLError(f"{label}: root element is <{root.tag}>, expected <PubmedArticleSet>")


def _text(elem: etree._Element | None) -> str | None:
    """All text inside an element, inline markup (<i>, <sup>, MathML) flattened."""
    if elem is None:
        return None
    if len(elem) == 0:  # a leaf: no markup to flatten (the common case, kept fast)
        raw = elem.text
        if raw is None:
            return None
        text = raw.strip()
        if "  " in text or "\n" in text or "\t" in text:
            text = " ".join(text.split())
        return text or None
    text = " ".join("".join(elem.itertext()).split())
    return text or None


def _find_text(elem: etree._Element, path: str) -> str | None:
    return _text(elem.find(path))


def _leaf_text(elem: etree._Element, path: str) -> str | None:
    """Text of an element that never holds markup (PMID, Volume, Year...): read in C by findtext."""
    value = elem.findtext(path)
    return value.strip() or None if value else None


def _leaf_list(elem: etree._Element, path: str) -> list[str]:
    return [t for t in (e.text.strip() for e in elem.iterfind(path) if e.text) if t]


# One XPath call per author list (in C) instead of several look-ups per author: authors
# are most of what a PubMed record holds, so this is a large share of parsing time.
_NAME_PARTS = etree.XPath("Author/LastName|Author/Initials|Author/Suffix|Author/CollectiveName")


def _authors(author_list: etree._Element | None) -> list[str]:
    """"Lastname Initials [Suffix]" per personal author, collective names as printed, in order; a last
    "et al" when PubMed marks the list incomplete (``CompleteYN="N"``), so a citation check compares only
    the authors listed."""
    if author_list is None:
        return []
    names: list[str] = []
    current: list[str] | None = None
    for part in _NAME_PARTS(author_list):
        tag = part.tag
        if tag == "LastName" or tag == "CollectiveName":  # a new author starts
            if current:
                names.append(" ".join(current))
            first = (part.text or "").strip() if tag == "LastName" else _text(part)  # collective names may carry markup
            current = [first] if first else None
        elif current is not None and part.text and part.text.strip():
            current.append(part.text.strip())
    if current:
        names.append(" ".join(current))
    if names and author_list.get("CompleteYN") == "N":  # PubMed lists only the first authors
        names.append("et al")
    return names


def _author_list(parent: etree._Element | None) -> etree._Element | None:
    """The first AuthorList of ``parent`` that is not ``Type="editors"``: editors are not authors."""
    if parent is None:
        return None
    return next((a for a in parent.iterfind("AuthorList") if a.get("Type") != "editors"), None)


def _abstract(abstract: etree._Element | None) -> str:
    if abstract is None:
        return ""
    parts = []
    for section in abstract.findall("AbstractText"):
        text = _text(section) or ""
        label = section.get("Label")
        parts.append(f"{label}: {text}" if label else text)
    return "\n".join(p for p in parts if p)


def _year(pub_date: etree._Element | None) -> int | None:
    if pub_date is None:
        return None
    year = _leaf_text(pub_date, "Year")
    if year and year.isdigit():
        return int(year)
    # MedlineDate is free text such as "1998 Dec-1999 Jan": the first year is the one cited.
    match = _YEAR.search(_find_text(pub_date, "MedlineDate") or "")
    return int(match.group(1)) if match else None


def _ids(pubmed_data: etree._Element | None) -> dict[str, str]:
    ids: dict[str, str] = {}
    if pubmed_data is None:
        return ids
    for aid in pubmed_data.findall("ArticleIdList/ArticleId"):
        id_type = aid.get("IdType", "pubmed")
        if id_type not in ids and aid.text:
            ids[id_type] = aid.text.strip()
    return ids


def _mesh(citation: etree._Element) -> list[str]:
    return _leaf_list(citation, "MeshHeadingList/MeshHeading/DescriptorName")


# One XPath (in C) picks the few update links out of lists that hold mostly "Cites".
_UPDATE_LINKS = etree.XPath("CommentsCorrectionsList/CommentsCorrections["
                            + " or ".join(f"@RefType='{t}'" for t in UPDATE_LINKS) + "]")


def _comments_corrections(citation: etree._Element) -> list[str]:
    """``"RetractionIn PMID 123"`` per update link (``"ErratumIn: <source>"`` when it names no PMID)."""
    out = []
    for link in _UPDATE_LINKS(citation):
        pmid = _leaf_text(link, "PMID")
        out.append(f"{link.get('RefType')} PMID {pmid}" if pmid else
                   f"{link.get('RefType')}: {_find_text(link, 'RefSource') or 'no source given'}")
    return out


def _row(pmid, ids, title, abstract, authors, year, journal, journal_iso, volume, issue, pages,
         language, publication_types, mesh_terms, doi_fallback=None, comments_corrections=()) -> dict:
    doi = ids.get("doi") or doi_fallback
    return {
        "pmid": pmid,
        "doi": doi.lower() if doi else None,
        "pmcid": ids.get("pmc"),
        "title": title or "",
        "abstract": abstract,
        "authors": authors,
        "first_author": authors[0] if authors else None,
        "year": year,
        "journal": journal,
        "journal_iso": journal_iso,
        "volume": volume,
        "issue": issue,
        "pages": pages,
        "language": language,
        "publication_types": publication_types,
        "mesh_terms": mesh_terms,
        "is_human": "Humans" in mesh_terms,
        "is_animal": "Animals" in mesh_terms,
        "comments_corrections": list(comments_corrections),
    }


# What an article must hold for a row to be made of it.
_REQUIRED = {"PubmedArticle": "<MedlineCitation> with a <PMID> and an <Article>",
             "PubmedBookArticle": "<BookDocument> with a <PMID>"}


def _article_row(elem: etree._Element) -> dict | None:
    citation = elem.find("MedlineCitation")
    article = citation.find("Article") if citation is not None else None
    if article is None:
        return None
    journal = article.find("Journal")
    issue = journal.find("JournalIssue") if journal is not None else None
    pages = _leaf_text(article, "Pagination/MedlinePgn")
    if not pages:
        start, end = _leaf_text(article, "Pagination/StartPage"), _leaf_text(article, "Pagination/EndPage")
        pages = f"{start}-{end}" if start and end else start
    eloc_doi = next((_text(e) for e in article.findall("ELocationID") if e.get("EIdType") == "doi"), None)
    return _row(
        pmid=_leaf_text(citation, "PMID"),
        ids=_ids(elem.find("PubmedData")),
        title=_find_text(article, "ArticleTitle") or _find_text(article, "VernacularTitle"),
        abstract=_abstract(article.find("Abstract")),
        authors=_authors(_author_list(article)),
        year=_year(issue.find("PubDate") if issue is not None else None)
        or _year(article.find("ArticleDate")),
        journal=_leaf_text(journal, "Title") if journal is not None else None,
        journal_iso=_leaf_text(journal, "ISOAbbreviation") if journal is not None else None,
        volume=_leaf_text(issue, "Volume") if issue is not None else None,
        issue=_leaf_text(issue, "Issue") if issue is not None else None,
        pages=pages,
        language=_leaf_text(article, "Language"),
        publication_types=_leaf_list(article, "PublicationTypeList/PublicationType"),
        mesh_terms=_mesh(citation),
        doi_fallback=eloc_doi,
        comments_corrections=_comments_corrections(citation),
    )


def _book_row(elem: etree._Element) -> dict | None:
    doc = elem.find("BookDocument")
    if doc is None:
        return None
    book = doc.find("Book")
    title = _find_text(doc, "ArticleTitle") or (_find_text(book, "BookTitle") if book is not None else None)
    return _row(
        pmid=_leaf_text(doc, "PMID"),
        ids=_ids(elem.find("PubmedBookData")),
        title=title,
        abstract=_abstract(doc.find("Abstract")),
        # A chapter's authors, else the book's; a book with only editors (GeneReviews itself) has no author.
        authors=_authors(_author_list(doc)) or _authors(_author_list(book)),
        year=_year(book.find("PubDate") if book is not None else None),
        journal=None,
        journal_iso=None,
        volume=_leaf_text(book, "Volume") if book is not None else None,
        issue=None,
        pages=None,
        language=_leaf_text(doc, "Language"),
        publication_types=_leaf_list(doc, "PublicationType"),
        mesh_terms=[],
    )
