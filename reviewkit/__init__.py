"""reviewkit: systematic reviews as code, from PubMed search to PRISMA 2020 and a claims audit."""

__version__ = "0.1.0"
