"""reviewkit: systematic reviews as code, from PubMed search to PRISMA 2020 and a claims audit."""

__version__ = "0.1.0"

from .pubmed import read_pubmed_xml  # noqa: E402  (the records parser is the package's front door)

__all__ = ["read_pubmed_xml", "__version__"]
