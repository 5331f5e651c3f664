"""reviewkit is a toolkit: a review of another intervention and other conditions, started with
`reviewkit init` and a protocol of its own, runs search --live (against the loopback E-utilities
emulator), screen, prisma and run --live with no change to the library; and an installed wheel,
outside any checkout, runs the worked example."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from reviewkit.cli import main
from reviewkit.project import Project
from reviewkit.testing.emulator import Emulator, synthetic_records

from helpers import ROOT

PROTOCOL = """\
review:
  title: Exercise for depression and anxiety in older adults
  question: In older adults with depression or anxiety, does structured exercise reduce symptoms?
database: PubMed
intervention:
  label: Exercise
  mesh: [Exercise Therapy]
  text: [exercise, physical activity]
dates: {datetype: pdat, mindate: "2000/01/01", maxdate: "2024/12/31"}
searches:
  depression:
    label: Depression
    mesh: [Depressive Disorder]
    text: [depression, depressive symptoms]
  anxiety:
    label: Anxiety
    mesh: [Anxiety Disorders]
    text: [anxiety]
screening:
  title_abstract_reasons: [wrong population, not exercise, other]
  full_text_reasons: [wrong population, no usable outcome, other]
"""
CANARY = "other-review-canary@example.invalid"


@pytest.mark.slow
def test_another_review_runs_with_no_change_to_the_library(tmp_path, monkeypatch, capsys):
    protocol_file = tmp_path / "exercise.yml"
    protocol_file.write_text(PROTOCOL, encoding="utf-8")
    assert main(["init", str(tmp_path / "exercise"), "--protocol", str(protocol_file)]) == 0
    root = tmp_path / "exercise"
    project = Project.load(root)
    protocol = project.protocol()
    records = [r for i, key in enumerate(protocol.searches)
               for r in synthetic_records(4, terms=[key], first_pmid=95_000_001 + 100 * i, seed=i)]
    monkeypatch.chdir(root / "notebooks")  # commands find the project from any folder inside it
    monkeypatch.delenv("REVIEWKIT_PROJECT", raising=False)
    monkeypatch.setenv("NCBI_EMAIL", CANARY)
    with Emulator(records, aliases={protocol.query(k): k for k in protocol.searches}) as emu:
        monkeypatch.setenv("REVIEWKIT_EUTILS_URL", emu.base_url)
        capsys.readouterr()
        assert main(["search", "--live", "--json"]) == 0
        found = json.loads(capsys.readouterr().out)
        terms = [e.params["term"] for e in emu.requests("esearch")]
        assert main(["screen"]) == 0
        assert main(["prisma", "--json"]) == 0
        capsys.readouterr()
        assert main(["prisma", "--json"]) == 0
        counts = json.loads(capsys.readouterr().out)
        assert main(["run", "--live", "--no-progress"]) == 0
    assert [s["key"] for s in found["searches"]] == ["depression", "anxiety"]
    assert all(s["count"] == s["retrieved"] == 4 for s in found["searches"])
    assert terms and all("ketamine" not in t.lower() and '"Exercise Therapy"[Mesh]' in t for t in terms)
    assert counts["overall"]["databases"]["identified"] == {"PubMed": 8}
    sheet = (root / "data" / "screening" / "live" / "title_abstract.csv").read_text(encoding="utf-8")
    assert sheet.count("PMID:950") == 8
    (run,) = [p for p in (root / "reports").iterdir() if p.is_dir()]
    manifest = json.loads((run / "run.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "ok" and manifest["mode"] == "live"
    page = (run / "index.html").read_text(encoding="utf-8")
    assert "Exercise for depression and anxiety in older adults" in page
    assert "ketamine" not in page.lower() and "SAMPLE DATA" not in page
    assert "This project holds no article to audit" in page
    leaked = [p for p in root.rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()]
    assert leaked == []


@pytest.mark.slow
def test_an_installed_wheel_runs_the_worked_example_outside_any_checkout(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)],
                   check=True, capture_output=True, text=True)
    (wheel,) = dist.glob("reviewkit-*.whl")
    # A fresh environment that sees this environment's dependencies (a plain path entry: its .pth files, such
    # as the editable install's, are not run) but not the checkout: reviewkit comes from the wheel alone.
    env_dir = tmp_path / "env"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)], check=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("REVIEWKIT_PROJECT", "PYTHONPATH")}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}"
    env["JUPYTER_PATH"] = str(Path(sys.prefix) / "share" / "jupyter")  # nbconvert's templates, with the dependencies
    where = subprocess.run([str(python), "-c", "import reviewkit; print(reviewkit.__file__)"], cwd=work, env=env,
                           check=True, capture_output=True, text=True).stdout
    assert where.startswith(str(env_dir)), where
    reviewkit = str(env_dir / "bin" / "reviewkit")
    subprocess.run([reviewkit, "init", "my-review", "--example", "ketamine"], cwd=work, env=env, check=True,
                   capture_output=True, text=True)
    done = subprocess.run([reviewkit, "run", "--offline", "--no-progress"], cwd=work / "my-review", env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = (work / "my-review" / "reports").iterdir()
    assert (work / "my-review" / "notebooks" / "screen.ipynb").is_file()  # the screening notebook ships too,
    assert not list(run.rglob("screen*.ipynb"))                           # and the report leaves it out
    page = (run / "index.html").read_text(encoding="utf-8")
    assert "Ketamine for addictive disorders: review report" in page and "SAMPLE DATA" in page
    assert str(ROOT) not in page
    shutil.rmtree(env_dir)
