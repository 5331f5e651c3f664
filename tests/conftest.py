"""Every test runs with the trial register and Crossref pointed at empty loopback emulators.

The worked example's protocol lists ClinicalTrials.gov, and a live citation check asks Crossref,
so any test that runs the example live would otherwise reach for the internet. A test that
needs registrations or Crossref works starts an emulator of its own and points the variable at it.
"""

from __future__ import annotations

import pytest

from reviewkit.testing.crossref_emulator import CrossrefEmulator
from reviewkit.testing.ctgov_emulator import CtgovEmulator


@pytest.fixture(scope="session", autouse=True)
def loopback_register_and_crossref():
    with CtgovEmulator() as ctgov, CrossrefEmulator() as crossref, pytest.MonkeyPatch.context() as env:
        env.setenv("REVIEWKIT_CTGOV_URL", ctgov.base_url)
        env.setenv("REVIEWKIT_CROSSREF_URL", crossref.base_url)
        yield
