"""Paths and objects of the worked example (the repository is its project) shared by the tests."""

from pathlib import Path

import numpy as np
import pandas as pd

from reviewkit.evidence import load_studies
from reviewkit.extraction import load_extraction
from reviewkit.meta import pool
from reviewkit.project import Project
from reviewkit.synthesis import Synthesis

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = Project.load(ROOT)
PROTOCOL = EXAMPLE.protocol()
SAMPLE_DIR = ROOT / "data" / "snapshots" / "sample"
SAMPLE_SCREENING = ROOT / "data" / "screening" / "sample"
EXTRACTION = ROOT / "data" / "extraction" / "outcomes.csv"
STUDIES = ROOT / "data" / "extraction" / "studies.csv"
ARTICLE = ROOT / "data" / "article"


def extraction_with(tmp_path, extra):
    """The sample's extraction, included and study tables plus made-up studies: each of ``extra`` is
    (row_id to copy, new study name, its design, {column: new value})."""
    rows = pd.read_csv(EXTRACTION, dtype=str, keep_default_na=False)
    studies = pd.read_csv(STUDIES, dtype=str, keep_default_na=False)
    for source, name, design, edits in extra:
        row = rows[rows["row_id"] == source].iloc[0].copy()
        row["row_id"], row["study_id"], row["study"] = f"{name}-{source}", f"TEST:{name}", name
        for col, value in edits.items():
            row[col] = value
        rows.loc[len(rows)] = row
        studies.loc[len(studies)] = {"study_id": f"TEST:{name}", "study": name, "design": design,
                                     "population": "test", "source": "test"}
    rows.to_csv(tmp_path / "outcomes.csv", index=False)
    studies.to_csv(tmp_path / "studies.csv", index=False)
    studies = load_studies(tmp_path / "studies.csv")
    extraction = load_extraction(tmp_path / "outcomes.csv", PROTOCOL, studies)
    included = pd.DataFrame({"study_id": studies["study_id"]})
    return extraction, included, studies


def made_up_synthesis(yi, vi, *, design="randomized", measure="OR", n=None, source=None, indirectness=None,
                      events_c=None, n_c=None, favourable="higher", domain="abstinence", disorder="aud",
                      comparison="control", narrative=(), certainty=None):
    """A synthesis of made-up study results, for tests of rules rather than of the sample; ``narrative``:
    (study, reported direction) pairs of studies without usable numbers."""
    k = len(yi)
    model = pool(yi, vi, method="REML") if k else None
    w = 1 / (np.asarray(vi, float) + ((model.tau2 or 0.0) if model else 0.0))
    studies = pd.DataFrame({
        "row_id": [f"r{i}" for i in range(k)], "study_id": [f"S{i}" for i in range(k)],
        "study": [f"Study {i}" for i in range(k)], "yi": yi, "vi": vi, "weight": 100 * w / w.sum() if k else [],
        "participants": n or [100.0] * k, "source_kind": source or ["full text"] * k,
        "indirectness": indirectness or [None] * k, "events_c": events_c or [None] * k, "n_c": n_c or [None] * k,
        "favourable": [favourable] * k, "timepoint": ["6 months"] * k})
    words = pd.DataFrame([{"row_id": f"n{i}", "study_id": f"N{i}", "study": study, "reported_direction": said,
                           "reported": said, "indirectness": None} for i, (study, said) in enumerate(narrative)],
                         columns=["row_id", "study_id", "study", "reported_direction", "reported", "indirectness"])
    return Synthesis(disorder, domain, comparison, design, measure if k else None, studies, words, model, "REML",
                     False, favourable == "lower" and domain == "relapse", certainty, {})
