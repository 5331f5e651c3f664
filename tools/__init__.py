"""Repository tools that build the worked example's data (not part of the installed package)."""
