"""PubMed XML parsing on every recorded NCBI fixture, files as NCBI ships them (gzip, DeleteCitation,
book records), plus hostile and odd documents."""

import gzip
import io
import logging
import tracemalloc
from pathlib import Path

import Bio
import pandas as pd
import pytest
from lxml import etree

import reviewkit
from reviewkit import pubmed
from reviewkit.errors import EntrezError
from reviewkit.pubmed import COLUMNS, PubmedXMLError, iter_pubmed_xml

FIX = Path(__file__).parent / "fixtures" / "eutils"


def read(name):
    return reviewkit.read_pubmed_xml(FIX / name)


def test_columns_are_documented_ones():
    assert list(read("pubmed2.xml").columns) == COLUMNS


def test_pubmed1_season_date_and_two_articles():
    df = read("pubmed1.xml")
    assert df["pmid"].tolist() == ["12091962", "9997"]
    assert df.loc[0, "year"] == 1990  # <Year>1990</Year><Season>Spring</Season>
    assert df.loc[0, "is_human"] and not df.loc[0, "is_animal"]
    assert df.loc[1, "doi"] == "10.1016/0005-2795(76)90109-4"
    assert df.loc[1, "journal_iso"] == "Biochim Biophys Acta"


def test_pubmed2_plain_records():
    df = read("pubmed2.xml")
    row = df.iloc[0]
    assert row.pmid == "11748933"
    assert row.doi == "10.1006/cryo.2001.2328"
    assert row.first_author == "Taddei AR"
    assert row.authors[0] == row.first_author
    assert row.volume == "42" and row.issue == "4" and row.pages == "244-55"
    assert row.language == "eng"
    assert row.abstract.startswith("This study subdivides the cryopreservation procedure")
    assert "Journal Article" in row.publication_types


def test_pubmed3_html_is_not_pubmed_xml():
    with pytest.raises(PubmedXMLError, match="expected <PubmedArticleSet>"):
        read("pubmed3.html")


def test_pubmed4_structured_abstract_keeps_labels_and_inline_markup_text():
    row = read("pubmed4.xml").iloc[0]
    assert row.pmid == "27797938"
    assert row.title.startswith("Leucocyte telomere length, genetic variants at the TERT gene")
    labels = [line.split(":")[0] for line in row.abstract.splitlines()]
    assert labels == ["OBJECTIVE", "DESIGN", "RESULTS", "CONCLUSIONS"]
    assert row.pmcid == "PMC5442267"
    assert row.year == 2017


def test_pubmed5_label_and_nlm_category():
    row = read("pubmed5.xml").iloc[0]
    assert row.abstract.splitlines()[0].startswith("OBJECTIVES:")
    assert row.pmcid == "PMC5771820" and row.doi == "10.1136/oemed-2017-104431"


def test_pubmed6_mathml_keeps_its_text_and_year_only_date():
    row = read("pubmed6.xml").iloc[0]
    assert row.year == 2018
    assert '"Blood Relationship"' in row.title
    assert "(LEmin)" in row.abstract  # LE<sub>min</sub>
    assert "mml" not in row.abstract and "<sub>" not in row.abstract
    assert "67.6 ± 4.1" in row.abstract  # text after a MathML block survives
    assert row.pages == "1034"


def test_pubmed7_collective_name_author_is_kept():
    row = read("pubmed7.xml").iloc[0]
    assert "Canadian Respiratory Research Network" in row.authors
    assert row.first_author == "Guo F"


ARTICLE = """<PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM"><PMID Version="1">{pmid}</PMID>
<Article PubModel="Print"><Journal><JournalIssue CitedMedium="Print"><PubDate>{date}</PubDate></JournalIssue>
<Title>J</Title></Journal><ArticleTitle>T {pmid}</ArticleTitle><Language>eng</Language>
<PublicationTypeList><PublicationType UI="D016428">Journal Article</PublicationType></PublicationTypeList>
</Article></MedlineCitation><PubmedData><ArticleIdList><ArticleId IdType="pubmed">{pmid}</ArticleId>
</ArticleIdList></PubmedData></PubmedArticle>"""


def doc(*articles, doctype=""):
    return f'<?xml version="1.0"?>{doctype}<PubmedArticleSet>{"".join(articles)}</PubmedArticleSet>'.encode()


def test_medline_date_gives_the_first_year_and_missing_fields_are_null():
    df = reviewkit.read_pubmed_xml(doc(ARTICLE.format(pmid=1, date="<MedlineDate>1998 Dec-1999 Jan</MedlineDate>")))
    row = df.iloc[0]
    assert row.year == 1998
    assert row.abstract == "" and row.authors == [] and row.first_author is None
    assert row.doi is None and row.volume is None


def test_book_article_is_a_row():
    book = """<PubmedBookArticle><BookDocument><PMID Version="1">20301295</PMID><Book>
    <BookTitle>GeneReviews</BookTitle><PubDate><Year>1993</Year></PubDate></Book>
    <ArticleTitle>Some condition</ArticleTitle><Language>eng</Language></BookDocument>
    <PubmedBookData><ArticleIdList><ArticleId IdType="bookaccession">NBK1116</ArticleId></ArticleIdList>
    </PubmedBookData></PubmedBookArticle>"""
    row = reviewkit.read_pubmed_xml(doc(book)).iloc[0]
    assert row.pmid == "20301295" and row.title == "Some condition" and row.year == 1993


def test_empty_set_and_file_objects():
    assert reviewkit.read_pubmed_xml(io.BytesIO(doc())).empty


def test_entity_bomb_is_refused_without_expansion():
    bomb = (b'<?xml version="1.0"?><!DOCTYPE PubmedArticleSet [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
            b'<PubmedArticleSet>&c;</PubmedArticleSet>')
    with pytest.raises(PubmedXMLError, match="declares XML entities"):
        reviewkit.read_pubmed_xml(bomb)


def test_external_entity_is_never_fetched(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xxe = (f'<?xml version="1.0"?><!DOCTYPE PubmedArticleSet [<!ENTITY x SYSTEM "file://{secret}">]>'
           f'<PubmedArticleSet>&x;</PubmedArticleSet>').encode()
    with pytest.raises(PubmedXMLError):
        reviewkit.read_pubmed_xml(xxe)


def test_unbundled_dtd_is_not_downloaded():
    # A DOCTYPE naming a DTD nobody bundles would make Bio.Entrez try the network.
    doctype = ('<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2099//EN" '
               '"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_990101.dtd">')
    df = reviewkit.read_pubmed_xml(doc(ARTICLE.format(pmid=7, date="<Year>2001</Year>"), doctype=doctype))
    assert df.pmid.tolist() == ["7"]


def test_efetch_error_body_is_an_entrez_error():
    with pytest.raises(EntrezError):
        reviewkit.read_pubmed_xml(b"<eFetchResult><ERROR>Unable to obtain query #1</ERROR></eFetchResult>")


def test_malformed_xml_names_the_source():
    with pytest.raises(PubmedXMLError, match="broken.xml: not well-formed"):
        reviewkit.read_pubmed_xml(b"<PubmedArticleSet><PubmedArticle>", name="broken.xml")


@pytest.mark.parametrize("pack", [bytes, gzip.compress], ids=["xml", "gzip"])
def test_streaming_memory_does_not_grow_with_file_size(pack):
    def peak(n):
        data = pack(doc(*(ARTICLE.format(pmid=i, date="<Year>2001</Year>") for i in range(1, n + 1))))
        tracemalloc.start()
        count = sum(1 for _ in iter_pubmed_xml(io.BytesIO(data)))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert count == n
        return top

    small, large = peak(500), peak(5000)
    assert large < 2 * small  # flat, not 10x


def test_author_names_suffix_missing_initials_and_collective_markup():
    authors = """<AuthorList><Author><LastName>Duncan</LastName><ForeName>W C</ForeName><Initials>WC</Initials>
    <Suffix>Jr</Suffix><AffiliationInfo><Affiliation>X</Affiliation></AffiliationInfo></Author>
    <Author><LastName>Plato</LastName></Author><Author><ForeName>Anon</ForeName></Author>
    <Author><CollectiveName>The <i>KETA</i> Group</CollectiveName></Author>
    <Author><LastName>van der Berg</LastName><Initials>A</Initials></Author></AuthorList>"""
    xml = ARTICLE.format(pmid=5, date="<Year>2020</Year>").replace("<Language>", authors + "<Language>")
    row = reviewkit.read_pubmed_xml(doc(xml)).iloc[0]
    assert row.authors == ["Duncan WC Jr", "Plato", "The KETA Group", "van der Berg A"]


# --- files as NCBI ships them: gzip, DeleteCitation, book records ------------------

BOOKS = Path(__file__).parent / "fixtures" / "pubmed"
DELETE = '<DeleteCitation><PMID Version="1">{}</PMID><PMID Version="1">{}</PMID></DeleteCitation>'


def update_file(*pmids, deleted=("31", "32")):
    """An update-file shaped set: revised articles, then the PMIDs NCBI withdrew."""
    return doc(*(ARTICLE.format(pmid=p, date="<Year>2024</Year>") for p in pmids), DELETE.format(*deleted))


def test_gzip_is_read_by_content_whatever_the_name(tmp_path):
    data = update_file(1, 2, 3)
    plain = reviewkit.read_pubmed_xml(data)
    for name in ("pubmed25n0001.xml.gz", "misnamed.xml"):
        (tmp_path / name).write_bytes(gzip.compress(data))
        frame = reviewkit.read_pubmed_xml(tmp_path / name)
        pd.testing.assert_frame_equal(frame, plain)
        assert frame.attrs["deleted_pmids"] == ["31", "32"]
    pd.testing.assert_frame_equal(reviewkit.read_pubmed_xml(gzip.compress(data)), plain)
    pd.testing.assert_frame_equal(reviewkit.read_pubmed_xml(io.BytesIO(gzip.compress(data))), plain)
    # NCBI's files may be several gzip members end to end
    members = gzip.compress(data[:100]) + gzip.compress(data[100:])
    pd.testing.assert_frame_equal(reviewkit.read_pubmed_xml(members), plain)


def test_delete_citation_pmids_are_reported_not_dropped(caplog):
    frame = reviewkit.read_pubmed_xml(update_file(1, 2), name="pubmed25n1300.xml")
    assert frame["pmid"].tolist() == ["1", "2"] and frame.attrs["deleted_pmids"] == ["31", "32"]
    assert reviewkit.read_pubmed_xml(doc(ARTICLE.format(pmid=1, date="<Year>2024</Year>"))).attrs["deleted_pmids"] == []
    only_deletions = reviewkit.read_pubmed_xml(doc(DELETE.format("7", "8")))
    assert only_deletions.empty and only_deletions.attrs["deleted_pmids"] == ["7", "8"]
    collected = []
    assert len(list(iter_pubmed_xml(update_file(1), deleted=collected))) == 1 and collected == ["31", "32"]
    with caplog.at_level(logging.WARNING, logger="reviewkit.pubmed"):
        list(iter_pubmed_xml(update_file(1), name="update.xml"))  # nobody asked: say so
    assert "update.xml: 2 DeleteCitation PMID(s) not applied" in caplog.text


def test_gzip_bomb_is_refused_with_bounded_memory(monkeypatch):
    monkeypatch.setattr(pubmed, "GZIP_SLACK_BYTES", 2**20)
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as gz:
        gz.write(b'<?xml version="1.0"?><PubmedArticleSet>')
        for _ in range(200):  # 200 MB of blanks: legal XML, about 200 KB compressed
            gz.write(b" " * 2**20)
        gz.write(b"</PubmedArticleSet>")
    bomb = buffer.getvalue()
    assert len(bomb) < 2**20
    tracemalloc.start()
    with pytest.raises(PubmedXMLError, match="inflates more than 100 times"):
        reviewkit.read_pubmed_xml(bomb, name="bomb.xml.gz")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 16 * 2**20


def test_hostile_xml_is_refused_inside_gzip_too(tmp_path):
    bomb = (b'<?xml version="1.0"?><!DOCTYPE PubmedArticleSet [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><PubmedArticleSet>&b;</PubmedArticleSet>')
    with pytest.raises(PubmedXMLError, match="declares XML entities"):
        reviewkit.read_pubmed_xml(gzip.compress(bomb))
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xxe = (f'<?xml version="1.0"?><!DOCTYPE PubmedArticleSet [<!ENTITY x SYSTEM "file://{secret}">]>'
           f'<PubmedArticleSet>{ARTICLE.format(pmid=1, date="<Year>2020</Year>").replace("T 1", "&x;")}'
           f'</PubmedArticleSet>').encode()
    with pytest.raises(PubmedXMLError) as refused:
        reviewkit.read_pubmed_xml(gzip.compress(xxe))
    assert "TOP-SECRET" not in str(refused.value)


@pytest.mark.parametrize("damage", ["truncated", "corrupted"])
def test_damaged_gzip_names_the_file(tmp_path, damage):
    data = gzip.compress(update_file(*range(1, 200)))
    bad = data[: len(data) // 2] if damage == "truncated" else data[:40] + bytes(200) + data[240:]
    (tmp_path / "pubmed.xml.gz").write_bytes(bad)
    with pytest.raises(PubmedXMLError, match=r"pubmed\.xml\.gz: (damaged gzip data|not well-formed)"):
        reviewkit.read_pubmed_xml(tmp_path / "pubmed.xml.gz")


def test_editor_only_book_has_no_authors():
    """GeneReviews itself (PMID 20301295) lists only its editors: they are not its authors."""
    row = reviewkit.read_pubmed_xml(BOOKS / "book_editors_only.xml").iloc[0]
    assert row.pmid == "20301295" and row.title == "GeneReviews" and row.year == 1993
    assert row.authors == [] and row.first_author is None


def test_book_fixture_is_valid_pubmed_xml():
    dtd = etree.DTD(str(Path(Bio.__file__).parent / "Entrez" / "DTDs" / "pubmed_250101.dtd"))
    parser = etree.XMLParser(load_dtd=False, no_network=True, resolve_entities=False)
    assert dtd.validate(etree.parse(str(BOOKS / "book_editors_only.xml"), parser)), dtd.error_log


def test_chapter_authors_are_taken_and_editors_never():
    fixture = (BOOKS / "book_editors_only.xml").read_bytes()
    chapter = fixture.replace(b"</Book>", b'</Book><ArticleTitle>A chapter</ArticleTitle><AuthorList Type="editors">'
                              b"<Author><LastName>Adam</LastName><Initials>MP</Initials></Author></AuthorList>"
                              b'<AuthorList Type="authors"><Author><LastName>Doe</LastName><Initials>J</Initials>'
                              b"</Author></AuthorList>")
    row = reviewkit.read_pubmed_xml(chapter).iloc[0]
    assert row.authors == ["Doe J"] and row.title == "A chapter"
    # a book's own author list (no Type: authors, as the DTD allows) still counts
    authored = fixture.replace(b"<Medium>", b"").replace(b'</AuthorList>', b'</AuthorList><AuthorList>'
                               b"<Author><LastName>Roe</LastName><Initials>K</Initials></Author></AuthorList>")
    assert reviewkit.read_pubmed_xml(authored).iloc[0].authors == ["Roe K"]
    # and an editors list on a journal article is not its authors either
    edited = ARTICLE.format(pmid=9, date="<Year>2020</Year>").replace(
        "<Language>", '<AuthorList Type="editors"><Author><LastName>Ed</LastName><Initials>E</Initials></Author>'
                      "</AuthorList><Language>")
    assert reviewkit.read_pubmed_xml(doc(edited)).iloc[0].first_author is None
