"""Tools for testing reviewkit and reviews built on it, never used by the runtime stages.

* ``reviewkit.testing.emulator``: a loopback NCBI E-utilities server;
* ``reviewkit.testing.render``: PubMed XML and ESearch answers rendered from record dicts.
"""
