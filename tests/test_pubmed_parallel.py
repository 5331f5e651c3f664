"""Large files are parsed by worker processes; the rows, and the errors, must be the single-process ones."""

import gzip
import re
from itertools import islice
from pathlib import Path

import pandas as pd
import pytest
from tqdm import tqdm

import reviewkit
from reviewkit import pubmed
from reviewkit.pubmed import PubmedXMLError, iter_pubmed_xml

FIX = Path(__file__).parent / "fixtures" / "eutils"
HEADER = (b'<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, '
          b'1st January 2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n<PubmedArticleSet>\n')
BOOK = (b'<PubmedBookArticle><BookDocument><PMID Version="1">20301295</PMID><Book><BookTitle>GeneReviews</BookTitle>'
        b'<PubDate><Year>1993</Year></PubDate></Book><ArticleTitle>Some condition</ArticleTitle>'
        b'<Language>eng</Language></BookDocument><PubmedBookData><ArticleIdList>'
        b'<ArticleId IdType="bookaccession">NBK1116</ArticleId></ArticleIdList></PubmedBookData></PubmedBookArticle>\n')


def fixture_articles() -> list[bytes]:
    found = []
    for i in (1, 2, 4, 5, 6, 7):
        found += re.findall(rb"<PubmedArticle>.*?</PubmedArticle>", (FIX / f"pubmed{i}.xml").read_bytes(), re.S)
    return found


def write_set(path: Path, copies: int = 4, *, header: bytes = HEADER, insert: bytes = b"") -> Path:
    """Every fixture article `copies` times with new PMIDs, a book article, and a baseline-style DeleteCitation."""
    arts = fixture_articles()
    body = []
    for n in range(copies * len(arts)):
        art = re.sub(rb'<PMID Version="1">\d+</PMID>', b'<PMID Version="1">%d</PMID>' % (90_000_000 + n),
                     arts[n % len(arts)], count=1)
        body.append(art + b"\n")
    body.insert(len(body) // 2, BOOK)
    body[3] = body[3].replace(b"</PMID>", b"</PMID>" + insert, 1)
    path.write_bytes(header + b"".join(body)
                     + b'<DeleteCitation><PMID Version="1">1</PMID></DeleteCitation>\n</PubmedArticleSet>\n')
    return path


@pytest.fixture
def split_small(monkeypatch):
    """Split even small files, at every article, and record parses run in this (the parent) process."""
    monkeypatch.setattr(pubmed, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(pubmed, "PARALLEL_MIN_GZIP_BYTES", 0)
    monkeypatch.setattr(pubmed, "SEGMENT_BYTES", 1)
    in_parent = []
    real = pubmed._iter_stream

    def spy(source, label, *args, **kwargs):
        in_parent.append(label)  # forked workers append to their own copy of this list
        return real(source, label, *args, **kwargs)

    monkeypatch.setattr(pubmed, "_iter_stream", spy)
    return in_parent


def test_workers_give_the_single_process_table(tmp_path, split_small):
    path = write_set(tmp_path / "set.xml")
    segments = pubmed._segments(path, path.stat().st_size)[1]
    assert len(segments) == 4 * len(fixture_articles()) + 1  # one per article, the book included
    parallel = reviewkit.read_pubmed_xml(path, workers=2)
    assert split_small == []  # every row came from a worker
    single = reviewkit.read_pubmed_xml(path, workers=1)
    assert split_small == [str(path)]
    pd.testing.assert_frame_equal(parallel, single)
    assert parallel.pmid.is_unique and "20301295" in set(parallel.pmid)
    assert parallel.attrs["deleted_pmids"] == single.attrs["deleted_pmids"] == ["1"]


def gzipped(path: Path) -> Path:
    out = path.with_name(path.name + ".gz")
    out.write_bytes(gzip.compress(path.read_bytes()))
    return out


def test_gzip_is_inflated_here_and_parsed_by_the_workers(tmp_path, split_small):
    path = gzipped(write_set(tmp_path / "set.xml", copies=8))
    parallel = reviewkit.read_pubmed_xml(path, workers=2)
    assert split_small == []  # every row came from a worker
    single = reviewkit.read_pubmed_xml(path, workers=1)
    pd.testing.assert_frame_equal(parallel, single)
    pd.testing.assert_frame_equal(parallel, reviewkit.read_pubmed_xml(tmp_path / "set.xml", workers=1))
    assert parallel.attrs["deleted_pmids"] == ["1"]


def test_gzip_segments_cut_in_a_comment_fall_back_to_one_process(tmp_path, split_small):
    path = gzipped(write_set(tmp_path / "set.xml", insert=b"<!-- not a cut: <PubmedArticle> -->"))
    parallel = reviewkit.read_pubmed_xml(path, workers=2)
    assert split_small == [str(path)]
    pd.testing.assert_frame_equal(parallel, reviewkit.read_pubmed_xml(path, workers=1))


@pytest.mark.parametrize("damage", ["xml cut short", "gzip cut short", "gzip bomb"])
def test_bad_gzip_fails_as_in_one_process(tmp_path, split_small, monkeypatch, damage):
    whole = write_set(tmp_path / "set.xml").read_bytes()
    path = tmp_path / "bad.xml.gz"
    if damage == "xml cut short":
        path.write_bytes(gzip.compress(whole[: len(whole) * 2 // 3]))
    elif damage == "gzip cut short":
        data = gzip.compress(whole)
        path.write_bytes(data[: len(data) * 2 // 3])
    else:
        monkeypatch.setattr(pubmed, "GZIP_SLACK_BYTES", 0)
        path.write_bytes(gzip.compress(whole[:-30] + b" " * 50 * 2**20 + whole[-30:]))
    with pytest.raises(PubmedXMLError) as single:
        reviewkit.read_pubmed_xml(path, workers=1)
    with pytest.raises(PubmedXMLError) as parallel:
        reviewkit.read_pubmed_xml(path, workers=2)
    assert str(parallel.value) == str(single.value)


def test_start_tag_inside_a_comment_falls_back_to_one_process(tmp_path, split_small):
    path = write_set(tmp_path / "set.xml", insert=b"<!-- not a cut: <PubmedArticle> -->")
    segments = pubmed._segments(path, path.stat().st_size)[1]
    assert len(segments) == 4 * len(fixture_articles()) + 2  # one cut falls in the comment
    parallel = reviewkit.read_pubmed_xml(path, workers=2)
    assert split_small == [str(path)]  # the malformed segment sent the parse back to this process
    pd.testing.assert_frame_equal(parallel, reviewkit.read_pubmed_xml(path, workers=1))


def test_truncated_file_fails_as_in_one_process(tmp_path, split_small):
    whole = write_set(tmp_path / "set.xml").read_bytes()
    path = tmp_path / "cut.xml"
    path.write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(PubmedXMLError, match="not well-formed") as single:
        reviewkit.read_pubmed_xml(path, workers=1)
    with pytest.raises(PubmedXMLError, match="not well-formed") as parallel:
        reviewkit.read_pubmed_xml(path, workers=2)
    assert str(parallel.value) == str(single.value)  # same message, same line number


def test_entity_declarations_are_refused_in_every_worker(tmp_path, split_small):
    header = (b'<?xml version="1.0"?>\n<!DOCTYPE PubmedArticleSet [<!ENTITY a "aaaaaaaaaa">]>\n'
              b"<PubmedArticleSet>\n")
    path = write_set(tmp_path / "set.xml", header=header)
    for source in (path, gzipped(path)):
        with pytest.raises(PubmedXMLError, match="declares XML entities"):
            reviewkit.read_pubmed_xml(source, workers=2)


@pytest.mark.timeout(60)
def test_stopping_early_shuts_the_workers_down(tmp_path, split_small):
    path = write_set(tmp_path / "set.xml", copies=20)
    rows = iter_pubmed_xml(path, workers=2)
    first = [row["pmid"] for row in islice(rows, 3)]
    rows.close()
    assert first == ["90000000", "90000001", "90000002"]


def test_small_files_and_bytes_stay_in_this_process(tmp_path, monkeypatch):
    path = write_set(tmp_path / "set.xml")
    assert path.stat().st_size < pubmed.PARALLEL_MIN_BYTES
    assert pubmed._segments(path, path.stat().st_size) is None
    monkeypatch.setattr(pubmed, "PARALLEL_MIN_BYTES", 0)
    assert pubmed._segments(tmp_path / "missing.xml", pubmed._size(tmp_path / "missing.xml")) is None
    with pytest.raises(PubmedXMLError, match="file not found"):
        reviewkit.read_pubmed_xml(tmp_path / "missing.xml", workers=2)


@pytest.mark.parametrize("workers", [0, -1, "2", True, 1.5])
def test_workers_must_be_a_positive_whole_number(workers):
    with pytest.raises(ValueError, match="workers must be"):
        list(iter_pubmed_xml(b"<PubmedArticleSet/>", workers=workers))


def test_progress_bar_counts_every_byte_in_both_modes(tmp_path, split_small, monkeypatch, capsys):
    bars = []

    class Recorded(tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(pubmed, "tqdm", Recorded)
    path = write_set(tmp_path / "set.xml")
    for source in (path, gzipped(path)):  # a gzip file's bar counts its compressed bytes
        for workers in (1, 2):
            reviewkit.read_pubmed_xml(source, workers=workers, progress=True)
            assert bars[-1].n == bars[-1].total == source.stat().st_size  # (a closed bar reads as disabled)
            assert "100%" in capsys.readouterr().err


def test_no_bar_for_a_small_source_unless_asked(capsys):
    reviewkit.read_pubmed_xml((FIX / "pubmed2.xml").read_bytes())
    assert capsys.readouterr().err == ""
