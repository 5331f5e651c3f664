"""A review is a project folder: finding it, its reviewkit.yml, `reviewkit init`, the read-only sample,
--protocol honoured everywhere, a fast start, and a transport that keeps to itself."""

import json
import logging
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from reviewkit import extraction
from reviewkit.cli import main
from reviewkit.errors import ProjectError, ReviewkitError, SnapshotError
from reviewkit.evidence import STUDY_COLUMNS
from reviewkit.project import Project
from reviewkit.review import Review
from reviewkit.scaffold import init_project
from reviewkit.snapshot import Snapshot

from helpers import EXAMPLE, PROTOCOL, ROOT, SAMPLE_DIR

# --- finding a project ------------------------------------------------------------------

def test_found_from_a_folder_below_it(monkeypatch):
    monkeypatch.delenv("REVIEWKIT_PROJECT", raising=False)
    monkeypatch.chdir(ROOT / "notebooks")
    assert Project.find().root == ROOT
    assert [p.name for p in Project.find().notebooks()][0] == "01_search.ipynb"


def test_explicit_folder_then_environment(tmp_path, monkeypatch):
    other = init_project(tmp_path / "other")
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("REVIEWKIT_PROJECT", str(other.root))
    assert Project.find().root == other.root          # the environment wins over the current folder
    assert Project.find(ROOT).root == ROOT            # --project wins over the environment
    monkeypatch.setenv("REVIEWKIT_PROJECT", str(tmp_path))
    with pytest.raises(ProjectError, match=r"REVIEWKIT_PROJECT: .* is not a reviewkit project \(no reviewkit.yml\)"):
        Project.find()


def test_no_project_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("REVIEWKIT_PROJECT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["prisma"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no reviewkit project here" in err and "reviewkit init DIR" in err


@pytest.mark.parametrize("text, message", [
    ("reviewkit: 1\npaths:\n  protocol: ../elsewhere/protocol.yml\n",
     r"paths.protocol: '../elsewhere/protocol.yml' leads outside"),
    ("reviewkit: 1\npaths:\n  snapshots: /etc\n", r"paths.snapshots: '/etc' must be relative"),
    ("reviewkit: 1\npaths:\n  protocl: x.yml\n", r"paths has unknown key\(s\) protocl"),
    ("reviewkit: 2\n", r"field 'reviewkit' must be 1"),
    ("reviewkit: 1\nsnapshots:\n  offline: ../x\n", r"snapshots.offline must be a folder name"),
    ("a: &x [1]\nb: *x\n", r"aliases \(\*name\) are not allowed"),
    ("reviewkit: 1\nreviewkit: 1\n", r"key 'reviewkit' appears twice"),
])
def test_a_bad_project_file_names_the_problem(tmp_path, text, message):
    (tmp_path / "reviewkit.yml").write_text(text, encoding="utf-8")
    with pytest.raises(ReviewkitError, match=message):
        Project.load(tmp_path)


def test_a_path_through_a_symlink_out_of_the_project_is_refused(tmp_path):
    (tmp_path / "outside").mkdir()
    project = tmp_path / "review"
    project.mkdir()
    (project / "link").symlink_to(tmp_path / "outside")
    (project / "reviewkit.yml").write_text("reviewkit: 1\npaths:\n  reports: link/reports\n", encoding="utf-8")
    with pytest.raises(ProjectError, match="leads outside the project folder"):
        Project.load(project)


def test_snapshot_and_screening_folders():
    assert EXAMPLE.snapshot_dir() == SAMPLE_DIR                                   # offline default: sample
    assert EXAMPLE.snapshot_dir(live=True) == ROOT / "data" / "snapshots" / "live"
    assert EXAMPLE.screening_dir(SAMPLE_DIR) == ROOT / "data" / "screening" / "sample"
    assert EXAMPLE.snapshot_dir("/tmp/x") == Path("/tmp/x")                       # a path is a path


def test_a_copy_of_a_snapshot_keeps_its_screening_folder(tmp_path):
    # A live run records into <run>/snapshot, named after the project's live snapshot: same decisions.
    Snapshot.create(tmp_path / "snapshot", sample=False, note="x", name="live")
    assert EXAMPLE.screening_dir(tmp_path / "snapshot") == ROOT / "data" / "screening" / "live"


# --- the sample is read-only ------------------------------------------------------------

def test_the_sample_is_read_only_whoever_asks(tmp_path, monkeypatch, capsys):
    before = {p: p.read_bytes() for p in SAMPLE_DIR.rglob("*") if p.is_file()}
    snap = Snapshot.open(SAMPLE_DIR)
    with pytest.raises(SnapshotError, match="is a sample and read-only"):
        snap.put("esearch", {"term": "x"}, b"<eSearchResult/>")
    with pytest.raises(SnapshotError, match="is a sample and read-only"):
        snap.write_manifest("aud", {})
    with pytest.raises(SnapshotError, match="is a sample and read-only"):
        Snapshot.create(SAMPLE_DIR, sample=False, note="live").record_lookup("efetch", {"id": "1"})
    # Live searches into the sample stop before any request is sent (nothing listens on port 9).
    monkeypatch.setenv("REVIEWKIT_EUTILS_URL", "http://127.0.0.1:9/entrez/eutils/")
    assert main(["search", "--live", "--snapshot", "sample"]) == 2
    assert "data/snapshots/sample is a sample and read-only" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in SAMPLE_DIR.rglob("*") if p.is_file()} == before


# --- --protocol is honoured by every command ------------------------------------------------

@pytest.fixture
def relabelled(tmp_path):
    """The example's protocol with other names for its searches (same queries, so the sample replays)."""
    raw = yaml.safe_load(PROTOCOL.path.read_text(encoding="utf-8"))
    raw["searches"]["gambling"]["label"] = "Problem gambling (relabelled)"
    path = tmp_path / "protocol.yml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_protocol_option_reaches_search_prisma_and_audit(relabelled, capsys):
    assert main(["prisma", "--json", "--protocol", str(relabelled)]) == 0
    capsys.readouterr()
    assert main(["audit", "--json", "--protocol", str(relabelled)]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert "problem gambling (relabelled)" in rows["C08"]["reason"]
    # A protocol whose query differs from the recorded one cannot replay the sample: it is used, not ignored.
    raw = yaml.safe_load(relabelled.read_text(encoding="utf-8"))
    raw["searches"]["gambling"]["text"] = ["gaming"]
    relabelled.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert main(["search", "--only", "gambling", "--protocol", str(relabelled)]) == 2
    assert "has no recorded esearch request" in capsys.readouterr().err


def test_protocol_option_reaches_the_notebooks(relabelled, tmp_path):
    review = Review(Project.find(ROOT, protocol=relabelled), output_dir=tmp_path)
    assert review.protocol.labels["gambling"] == "Problem gambling (relabelled)"
    assert review.protocol.path == relabelled


# --- reviewkit init -----------------------------------------------------------------------

def test_init_creates_an_empty_review_that_asks_for_its_protocol(tmp_path, capsys):
    assert main(["init", str(tmp_path / "mine")]) == 0
    root = tmp_path / "mine"
    for name in ("reviewkit.yml", "README.md", ".gitignore", "data/protocol.yml", "data/extraction/outcomes.csv",
                 "data/extraction/studies.csv", "data/extraction/README.md", "data/article/README.md",
                 "notebooks/01_search.ipynb", "notebooks/06_summary.ipynb", "notebooks/screen.ipynb"):
        assert (root / name).is_file(), name
    header = (root / "data" / "extraction" / "outcomes.csv").read_text().strip().split(",")
    assert set(header) == set(extraction.COLUMNS) and len(header) == len(extraction.COLUMNS)
    assert (root / "data" / "extraction" / "studies.csv").read_text().strip().split(",") == list(STUDY_COLUMNS)
    project = Project.load(root)
    assert project.snapshots == {"offline": "live", "live": "live"}
    assert "ketamine" not in (root / "data" / "protocol.yml").read_text().lower()
    capsys.readouterr()
    assert main(["search", "--live", "--project", str(root)]) == 2
    err = capsys.readouterr().err
    assert "field 'review.title' still holds the template's placeholder" in err
    assert not (root / "data" / "snapshots" / "live").exists()


def test_init_never_overwrites_and_refuses_what_it_cannot_do(tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    assert main(["init", str(tmp_path / "full")]) == 2
    assert "is not an empty folder; reviewkit init never overwrites" in capsys.readouterr().err
    assert (tmp_path / "full" / "notes.txt").read_text() == "mine" and len(list((tmp_path / "full").iterdir())) == 1
    assert main(["init", str(tmp_path / "x"), "--project", str(ROOT)]) == 2
    assert "--project names an existing project" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["init", str(tmp_path / "y"), "--example", "nicotine"])
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_init_from_a_protocol_of_ones_own(tmp_path, relabelled):
    project = init_project(tmp_path / "mine", protocol=relabelled)
    assert project.protocol().labels["gambling"] == "Problem gambling (relabelled)"


def test_init_example_copies_the_worked_example(tmp_path, capsys):
    assert main(["init", str(tmp_path / "ex"), "--example", "ketamine"]) == 0
    root = tmp_path / "ex"
    for name in ("data/protocol.yml", "data/snapshots/sample/snapshot.json", "data/screening/sample/full_text.csv",
                 "data/extraction/outcomes.csv", "data/article/claims.yml", "data/corpus/ERRATA.md",
                 "notebooks/screen.ipynb"):
        assert (root / name).read_bytes() == (ROOT / name).read_bytes(), name
    assert not list(root.rglob("*.xlsx"))
    capsys.readouterr()
    assert main(["prisma", "--json", "--project", str(root)]) == 0
    copied = json.loads(capsys.readouterr().out)
    assert main(["prisma", "--json"]) == 0
    assert copied == json.loads(capsys.readouterr().out)


# --- start-up ------------------------------------------------------------------------------

HEAVY = ("pandas", "matplotlib", "nbformat", "papermill", "numpy", "scipy", "IPython")


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["run", "--help"]])
def test_help_and_version_import_no_heavy_module(argv):
    code = ("import sys\nfrom reviewkit.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert time.perf_counter() - started < 5  # was 6 to 12 s when every command module was imported up front


# --- the live transport keeps to itself ------------------------------------------------------

def test_two_transports_in_two_threads_never_cross(tmp_path):
    from Bio import Entrez

    from reviewkit.entrez import Credentials, LiveTransport
    from reviewkit.ratelimit import RateLimiter
    from reviewkit.testing.emulator import Emulator, synthetic_records

    entrez_settings = (Entrez.email, Entrez.api_key, Entrez.tool, Entrez.max_tries)
    opener = urllib.request._opener
    with Emulator(synthetic_records(5, terms=["left"], first_pmid=93_000_001), rate_limit=False) as left, \
            Emulator(synthetic_records(5, terms=["right"], first_pmid=94_000_001), rate_limit=False) as right:
        results: dict[str, list[str]] = {"left": [], "right": []}

        def work(name, emu):
            snap = Snapshot.create(tmp_path / name, sample=False, note="thread test")
            transport = LiveTransport(snap, Credentials(email=f"{name}@example.org"), base_url=emu.base_url,
                                      limiter=RateLimiter(), rate=10_000, backoff=0.01)
            for i in range(200):
                body = transport.request("esearch", {"db": "pubmed", "term": name, "retstart": str(i % 3)})
                results[name].append(body.decode())

        threads = [threading.Thread(target=work, args=(n, e)) for n, e in (("left", left), ("right", right))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        asked_left = [e.params.get("term") for e in left.requests("esearch")]
        asked_right = [e.params.get("term") for e in right.requests("esearch")]
    assert asked_left == ["left"] * 200 and asked_right == ["right"] * 200
    assert all("<Count>5</Count>" in b for bodies in results.values() for b in bodies)
    assert (Entrez.email, Entrez.api_key, Entrez.tool, Entrez.max_tries) == entrez_settings
    assert urllib.request._opener is opener


def test_retries_and_waits_are_logged(tmp_path, caplog):
    from reviewkit.entrez import Credentials, LiveTransport
    from reviewkit.testing.emulator import Emulator

    with Emulator([], rate_limit=False) as emu:
        emu.inject("500", utility="esearch", times=2)
        transport = LiveTransport(Snapshot.create(tmp_path / "s", sample=False, note="x"),
                                  Credentials(email="log@example.org"), base_url=emu.base_url, backoff=0.01)
        with caplog.at_level(logging.INFO, logger="reviewkit"):
            transport.request("esearch", {"db": "pubmed", "term": "anything"})
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 2 and retries[0].startswith("esearch: HTTP 500; retry 1 of 5 in ")
    assert all("log@example.org" not in r.getMessage() for r in caplog.records)
