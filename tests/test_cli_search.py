import json
import subprocess
import sys

from reviewkit.cli import main


def test_offline_search_prints_counts_and_says_it_is_a_sample(capsys):
    assert main(["search", "--offline"]) == 0
    out = capsys.readouterr().out
    assert "SAMPLE" in out and "not a complete PubMed search" in out
    for key in ("aud", "oud", "cocaine", "gambling"):
        assert f"[{key}] Count " in out


def test_search_json_shape(capsys):
    assert main(["search", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["sample"] is True
    assert [s["key"] for s in data["searches"]] == ["aud", "oud", "cocaine", "gambling"]
    for s in data["searches"]:
        assert set(s) == {"key", "query", "count", "retrieved", "pmids"}
        assert s["count"] == s["retrieved"] == len(s["pmids"])


def test_unknown_search_exits_non_zero_with_a_message(capsys):
    assert main(["search", "--only", "nicotine"]) == 2
    assert "unknown search 'nicotine'" in capsys.readouterr().err


def test_missing_snapshot_is_a_clear_error(tmp_path, capsys):
    assert main(["search", "--snapshot", str(tmp_path / "none")]) == 2
    assert "is not a reviewkit snapshot" in capsys.readouterr().err


def test_python_dash_m_entry_point():
    done = subprocess.run([sys.executable, "-m", "reviewkit", "search", "--json", "--only", "gambling"],
                          capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["searches"][0]["count"] == 2
