import json
import subprocess
import sys

from reviewkit.cli import main

from helpers import PROTOCOL


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
    err = capsys.readouterr().err
    assert "does not exist (no snapshot.json)" in err and "reviewkit search --live" in err


def test_python_dash_m_entry_point():
    done = subprocess.run([sys.executable, "-m", "reviewkit", "search", "--json", "--only", "gambling"],
                          capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["searches"][0]["count"] == 2


def test_live_rerun_reports_new_and_dropped_pmids(tmp_path, monkeypatch, capsys):
    from reviewkit.testing.emulator import Emulator, synthetic_records

    protocol = PROTOCOL
    records = synthetic_records(30, terms=["gambling"], first_pmid=96_000_001)
    aliases = {protocol.query(k): k for k in protocol.searches}
    snapshot = tmp_path / "live"
    with Emulator(records, aliases=aliases) as emu:
        monkeypatch.setenv("REVIEWKIT_EUTILS_URL", emu.base_url)
        monkeypatch.setenv("NCBI_EMAIL", "cli-test@example.org")
        monkeypatch.setenv("NCBI_API_KEY", "cli-test-key")
        argv = ["search", "--live", "--snapshot", str(snapshot), "--only", "gambling"]
        assert main(argv) == 0
        first = capsys.readouterr().out
        assert "[gambling] Count 30, records retrieved 30" in first
        assert "since the previous run" not in first
        emu.add_records(synthetic_records(2, terms=["gambling"], first_pmid=97_000_001))
        emu.remove_records([records[0]["pmid"]])
        assert main(argv) == 0
    out = capsys.readouterr().out
    assert "[gambling] Count 31, records retrieved 31" in out
    assert ("[gambling] since the previous run: 2 new (PMID 97000001, 97000002), "
            f"1 dropped (PMID {records[0]['pmid']})") in out
