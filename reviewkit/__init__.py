"""reviewkit: systematic reviews as code, from PubMed search to PRISMA 2020 and a claims audit."""

__version__ = "0.2.0"

__all__ = ["read_pubmed_xml", "__version__"]


def __getattr__(name: str):
    # The records parser is the package's front door, imported on first use so that
    # `import reviewkit` (and `reviewkit --help`) stays light.
    if name == "read_pubmed_xml":
        from .pubmed import read_pubmed_xml

        return read_pubmed_xml
    raise AttributeError(f"module 'reviewkit' has no attribute {name!r}")
