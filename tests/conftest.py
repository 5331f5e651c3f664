"""Every test runs with the trial register and Crossref pointed at empty loopback emulators.

The worked example's protocol lists ClinicalTrials.gov, and a live citation check asks Crossref,
so any test that runs the example live would otherwise reach for the internet. A test that
needs registrations or Crossref works starts an emulator of its own and points the variable at it.
"""

from __future__ import annotations

import os

import pytest

from reviewkit.testing.crossref_emulator import CrossrefEmulator
from reviewkit.testing.ctgov_emulator import CtgovEmulator

_VARIABLES = ("REVIEWKIT_CTGOV_URL", "REVIEWKIT_CROSSREF_URL")


@pytest.fixture(scope="session", autouse=True)
def loopback_register_and_crossref():
    saved = {k: os.environ.get(k) for k in _VARIABLES}
    with CtgovEmulator() as ctgov, CrossrefEmulator() as crossref:
        os.environ["REVIEWKIT_CTGOV_URL"] = ctgov.base_url
        os.environ["REVIEWKIT_CROSSREF_URL"] = crossref.base_url
        yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
