"""Writing matplotlib figures as report files: PNG and SVG, atomically, the same bytes on every rerun."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from .io import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def save_figure(fig: Figure, path_stem: str | Path, *, dpi: int = 200) -> list[Path]:
    """Write ``<path_stem>.png`` (``dpi``) and ``<path_stem>.svg``; returns both paths.

    The SVG keeps its text as text (journals and readers can edit and search it); no date and a
    fixed hash salt keep a rerun's files byte-identical, so a changed figure means changed content.
    """
    import matplotlib

    written = []
    for ext, resolution in (("png", dpi), ("svg", None)):
        buffer = io.BytesIO()
        with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "reviewkit"}):
            fig.savefig(buffer, format=ext, facecolor="white", dpi=resolution or "figure",
                        metadata={"Date": None} if ext == "svg" else None)
        written.append(atomic_write_bytes(Path(path_stem).with_suffix(f".{ext}"), buffer.getvalue()))
    return written
