from pathlib import Path

import pytest
import yaml

from reviewkit.errors import ProtocolError
from reviewkit.protocol import load_protocol

from helpers import PROTOCOL


def write(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load(PROTOCOL.path.read_text())
    mutate(data)
    path = tmp_path / "protocol.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_bundled_protocol_has_the_four_searches():
    protocol = PROTOCOL
    assert list(protocol.searches) == ["aud", "oud", "cocaine", "gambling"]
    assert protocol.screening_reasons["title_abstract"]
    assert protocol.screening_reasons["full_text"]


def test_outcome_domains_and_comparisons():
    assert PROTOCOL.outcomes["relapse"].favourable == "lower" and PROTOCOL.outcomes["abstinence"].synthesise
    assert not PROTOCOL.outcomes["other"].synthesise
    assert PROTOCOL.comparison_of("active placebo").key == "control"
    assert PROTOCOL.comparison_of("less ketamine").key == "dose"
    assert PROTOCOL.comparison_of("none").kind == "single_arm"
    assert PROTOCOL.comparison_of("other") is None
    assert PROTOCOL.arms("control") == ("Ketamine", "Control")
    assert PROTOCOL.arms("dose") == ("More ketamine", "Less ketamine")
    assert PROTOCOL.arms("single_arm") == ("Ketamine", "")


def test_query_combines_intervention_and_disorder_blocks():
    query = PROTOCOL.query("oud")
    intervention, disorder = query.split(" AND ", 1)
    assert '"Ketamine"[Mesh]' in intervention and "esketamine[tiab]" in intervention
    assert '"Opioid-Related Disorders"[Mesh]' in disorder
    assert '"opioid use disorder"[tiab]' in disorder  # phrases are quoted
    assert query.count("(") == query.count(")")


def test_date_limits_become_esearch_parameters():
    params = PROTOCOL.dates.params()
    assert params == {"datetype": "pdat", "mindate": "1966/01/01", "maxdate": "2026/10/31"}


def test_unknown_search_key_names_the_known_ones():
    with pytest.raises(ProtocolError, match="unknown search 'nicotine'.*aud, oud, cocaine, gambling"):
        PROTOCOL.query("nicotine")


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["searches"]["aud"].update(mesh=[]), r"field 'searches\.aud\.mesh' must be a non-empty list"),
    (lambda d: d["dates"].update(mindate="2020-01-01"), r"field 'dates\.mindate' must be YYYY"),
    (lambda d: d["dates"].update(maxdate="2020/13"), r"field 'dates\.maxdate' must be YYYY"),
    (lambda d: d.update(serches={}), r"field '\(top level\)' has unknown key\(s\) serches"),
    (lambda d: d["searches"]["gambling"].update(synonyms=["x"]), r"searches\.gambling' has unknown key"),
    (lambda d: d["dates"].pop("maxdate"), r"needs both mindate and maxdate"),
    (lambda d: d["intervention"].update(text=['keta"mine']), r"character PubMed treats as syntax"),
    (lambda d: d["outcomes"].update({"<first_outcome>": {"label": "A"}}),
     r"field 'outcomes' still holds the template's placeholder key '<first_outcome>'"),
    (lambda d: d["outcomes"]["craving"].update(favourable="less"), r"'outcomes\.craving\.favourable' must be higher or"),
    (lambda d: d["outcomes"]["craving"].update(synthesise="maybe"), r"'outcomes\.craving\.synthesise' must be true"),
    (lambda d: d["comparisons"]["dose"].update(kind="versus"), r"'comparisons\.dose\.kind' must be one of control"),
    (lambda d: d["comparisons"]["dose"].update(comparators=["placebo"]), r"'comparisons\.dose\.comparators' lists "
                                                                          r"'placebo', which comparisons"),
])
def test_malformed_protocol_names_field_and_file(tmp_path, mutate, message):
    path = write(tmp_path, mutate)
    with pytest.raises(ProtocolError, match=message) as info:
        load_protocol(path)
    assert str(path) in str(info.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ProtocolError, match="not found"):
        load_protocol(tmp_path / "nope.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("review: [unclosed\n")
    with pytest.raises(ProtocolError, match="not valid YAML"):
        load_protocol(bad)


def test_the_protocol_offers_the_estimators_meta_fits():
    from reviewkit import protocol
    from reviewkit.meta.tau2 import METHODS

    assert protocol.METHODS == METHODS  # two layers, one list: the base layer cannot import meta
