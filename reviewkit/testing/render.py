"""Render record dicts as PubMed EFetch XML, and ESearch answers.

Used to build the offline sample snapshot from the curated corpus and by the
loopback E-utilities emulator. Only fields the record has are written: no
abstract, MeSH heading or identifier is made up. Input dicts use the
records-table field names (pmid, doi, title, authors as "Lastname Initials",
journal, journal_iso, year, volume, issue, pages, language,
publication_types, mesh_terms, abstract).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from lxml import etree

PUBMED_DOCTYPE = (
    '<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN" '
    '"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">'
)
ESEARCH_DOCTYPE = (
    '<!DOCTYPE eSearchResult PUBLIC "-//NLM//DTD esearch 20060628//EN" '
    '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20060628/esearch.dtd">'
)
_SUFFIXES = {"Jr", "Sr", "II", "III", "IV"}
_INITIALS = re.compile(r"^[A-Z]{1,4}$")


def is_et_al(name: str) -> bool:
    return name.strip().rstrip(".").lower() in {"et al", "et al.", "et-al"}


def split_author(name: str) -> dict[str, str]:
    """'Duncan WC Jr' → LastName Duncan, Initials WC, Suffix Jr; anything else is a collective name."""
    parts = name.split()
    suffix = parts.pop() if len(parts) > 2 and parts[-1] in _SUFFIXES else None
    if len(parts) >= 2 and _INITIALS.match(parts[-1]):
        out = {"LastName": " ".join(parts[:-1]), "Initials": parts[-1]}
        if suffix:
            out["Suffix"] = suffix
        return out
    return {"CollectiveName": name}


def _sub(parent, tag: str, text=None, **attrib):
    el = etree.SubElement(parent, tag, {k: str(v) for k, v in attrib.items()})
    if text is not None:
        el.text = str(text)
    return el


def article_element(rec: dict) -> etree._Element:
    art = etree.Element("PubmedArticle")
    cit = _sub(art, "MedlineCitation", Status="PubMed-not-MEDLINE", Owner="NLM")
    _sub(cit, "PMID", rec["pmid"], Version="1")
    article = _sub(cit, "Article", PubModel="Print")
    journal = _sub(article, "Journal")
    issue = _sub(journal, "JournalIssue", CitedMedium="Print")
    if rec.get("volume"):
        _sub(issue, "Volume", rec["volume"])
    if rec.get("issue"):
        _sub(issue, "Issue", rec["issue"])
    pub_date = _sub(issue, "PubDate")
    if rec.get("year"):
        _sub(pub_date, "Year", rec["year"])
    if rec.get("journal"):
        _sub(journal, "Title", rec["journal"])
    if rec.get("journal_iso"):
        _sub(journal, "ISOAbbreviation", rec["journal_iso"])
    _sub(article, "ArticleTitle", rec.get("title") or "")
    if rec.get("pages"):
        _sub(_sub(article, "Pagination"), "MedlinePgn", rec["pages"])
    if rec.get("abstract"):
        _sub(_sub(article, "Abstract"), "AbstractText", rec["abstract"])
    named = [a for a in rec.get("authors") or [] if not is_et_al(a)]
    if named:
        # A list that ended in "et al" is incomplete, which PubMed marks with CompleteYN="N".
        complete = "N" if len(named) < len(rec["authors"]) else "Y"
        alist = _sub(article, "AuthorList", CompleteYN=complete)
        for name in named:
            author = _sub(alist, "Author", ValidYN="Y")
            for tag, value in split_author(name).items():
                _sub(author, tag, value)
    _sub(article, "Language", rec.get("language") or "eng")
    ptl = _sub(article, "PublicationTypeList")
    for pt in rec.get("publication_types") or []:
        _sub(ptl, "PublicationType", pt)
    if rec.get("comments_corrections"):  # "RetractionIn PMID 123", as reviewkit.pubmed reads them
        ccl = _sub(cit, "CommentsCorrectionsList")
        for link in rec["comments_corrections"]:
            ref_type, _, pmid = link.partition(" PMID ")
            cc = _sub(ccl, "CommentsCorrections", RefType=ref_type)
            _sub(cc, "RefSource", f"Synthetic notice {pmid}")
            _sub(cc, "PMID", pmid, Version="1")
    if rec.get("mesh_terms"):
        mhl = _sub(cit, "MeshHeadingList")
        for term in rec["mesh_terms"]:
            _sub(_sub(mhl, "MeshHeading"), "DescriptorName", term, MajorTopicYN="N")
    data = _sub(art, "PubmedData")
    _sub(data, "PublicationStatus", "ppublish")
    ids = _sub(data, "ArticleIdList")
    _sub(ids, "ArticleId", rec["pmid"], IdType="pubmed")
    if rec.get("doi"):
        _sub(ids, "ArticleId", rec["doi"], IdType="doi")
    return art


def pubmed_xml(records: Iterable[dict], comment: str | None = None) -> bytes:
    """A PubmedArticleSet document in NCBI's layout (declaration, DOCTYPE, one article per line)."""
    root = etree.Element("PubmedArticleSet")
    for rec in records:
        root.append(article_element(rec))
    body = b"\n".join(etree.tostring(a, encoding="utf-8") for a in root)
    note = f"<!-- {comment} -->\n".encode() if comment else b""
    return (b'<?xml version="1.0" ?>\n' + PUBMED_DOCTYPE.encode() + b"\n" + note
            + b"<PubmedArticleSet>\n" + body + (b"\n" if body else b"") + b"</PubmedArticleSet>\n")


def esearch_xml(count: int, ids: list[str], retstart: int, query_translation: str,
                webenv: str | None = None, query_key: str | None = None, comment: str | None = None) -> bytes:
    root = etree.Element("eSearchResult")
    _sub(root, "Count", count)
    _sub(root, "RetMax", len(ids))
    _sub(root, "RetStart", retstart)
    if webenv:
        _sub(root, "QueryKey", query_key or "1")
        _sub(root, "WebEnv", webenv)
    idlist = _sub(root, "IdList")
    for i in ids:
        _sub(idlist, "Id", i)
    _sub(root, "TranslationSet")
    _sub(root, "QueryTranslation", query_translation)
    note = f"<!-- {comment} -->".encode() if comment else b""
    return (b'<?xml version="1.0" encoding="UTF-8" ?>\n' + ESEARCH_DOCTYPE.encode() + note
            + etree.tostring(root, encoding="utf-8") + b"\n")
