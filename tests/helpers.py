"""Paths and objects of the worked example (the repository is its project) shared by the tests."""

from pathlib import Path

from reviewkit.project import Project

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = Project.load(ROOT)
PROTOCOL = EXAMPLE.protocol()
SAMPLE_DIR = ROOT / "data" / "snapshots" / "sample"
SAMPLE_SCREENING = ROOT / "data" / "screening" / "sample"
EXTRACTION = ROOT / "data" / "extraction" / "outcomes.csv"
STUDIES = ROOT / "data" / "extraction" / "studies.csv"
ARTICLE = ROOT / "data" / "article"
