"""The PRISMA 2020 flow diagram (new reviews; databases and other methods), from counts.

Layout follows the PRISMA 2020 template: two columns, "Identification of
studies via databases and registers" (white) and "via other methods" (grey),
each with its main boxes and the removal/exclusion boxes to their right; stage
bands Identification, Screening, Included on the left; both columns' assessed
reports flow into "Studies included in review". Saved as PNG and SVG.

Sized to be read as it is shown: the figure is 7 in wide, so it prints at
full size on A4 or US Letter (portrait, 12 mm margins) and the report shows it
at its natural size (``reviewkit.notebook.show_image``); every text is at least
8 pt at that size (:data:`MIN_FONT`). Box text is wrapped to the box by its
measured width in the font used, not by a character count.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never open a window (papermill, CI)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402
from matplotlib.textpath import TextToPath  # noqa: E402

from .dedupe import REGISTER_SOURCES  # noqa: E402
from .io import atomic_write_bytes  # noqa: E402
from .prisma import DatabaseCounts, PrismaCounts, ReportCounts  # noqa: E402

MIN_FONT = 8.0  # pt: the smallest text of the diagram at its natural size
FONT = 8.5  # box text
TITLE_FONT = 10.5
SPACING = 1.3  # line spacing, in lines
DPI = 200  # the PNG's resolution (its pHYs records it, so readers show it at its natural size)
PAD = 0.07  # inches between a box's edge and its text
BAND_W = 0.26
MAIN_W, SIDE_W, GAP = 1.42, 1.58, 0.13
HEADER_COLOUR, OTHER_COLOUR, BAND_COLOUR = "#f6c343", "#e6e6e6", "#a9c4e8"


def _line(size: float = FONT) -> float:
    """Height of one text line in inches."""
    return size * SPACING / 72


@lru_cache(maxsize=4096)
def _text_width(text: str, size: float, bold: bool = False) -> float:
    """Width of ``text`` in inches, in the diagram's font (measured, not estimated)."""
    prop = FontProperties(size=size, weight="bold" if bold else "normal")
    return TextToPath().get_text_width_height_descent(text, prop, ismath=False)[0] / 72


def _n(n: int) -> str:
    # No-break spaces: wrapping never splits "(n = 12)" (textwrap breaks on ASCII whitespace only).
    return f"(n\u00a0=\u00a0{n})"


def _excluded(r: ReportCounts) -> list[str]:
    lines = ["Reports excluded:"]
    lines += [f"  {reason} {_n(n)}" for reason, n in r.excluded.items()] or ["  none (n = 0)"]
    return lines


def identified_lines(db: DatabaseCounts) -> list[str]:
    """PRISMA 2020's first box: databases, then registers (named when not searched, never "n = 0")."""
    databases = [f"{s} {_n(n)}" for s, n in db.identified.items() if s not in REGISTER_SOURCES]
    registers = [f"{s} {_n(n)}" for s, n in db.identified.items() if s in REGISTER_SOURCES]
    registers += [f"{s} {why}" for s, why in db.not_searched.items()]
    return [f"  Databases: {', '.join(databases) or 'none'}", f"  Registers: {', '.join(registers) or 'none searched'}"]


def _boxes(c: PrismaCounts) -> dict[str, list[str]]:
    db, om = c.databases, c.other_methods
    return {
        "db_identified": ["Records identified from:", *identified_lines(db)],
        "db_removed": ["Records removed before screening:", f"  Duplicate records removed {_n(db.duplicates_removed)}",
                       f"  Records removed for other reasons {_n(db.removed_other)}"],
        "db_screened": [f"Records screened {_n(db.records_screened)}"]
        + ([f"  awaiting screening {_n(db.records_awaiting)}"] if db.records_awaiting else []),
        "db_excluded": [f"Records excluded {_n(db.records_excluded)}"],
        "db_sought": [f"Reports sought for retrieval {_n(db.reports.sought)}"],
        "db_not_retrieved": [f"Reports not retrieved {_n(db.reports.not_retrieved)}"],
        "db_assessed": [f"Reports assessed for eligibility {_n(db.reports.assessed)}"]
        + ([f"  awaiting assessment {_n(db.reports.awaiting)}"] if db.reports.awaiting else []),
        "db_excl": _excluded(db.reports),
        "om_identified": ["Records identified from:"] + [f"  {s} {_n(n)}" for s, n in om.identified.items()],
        "om_sought": [f"Reports sought for retrieval {_n(om.reports.sought)}"],
        "om_not_retrieved": [f"Reports not retrieved {_n(om.reports.not_retrieved)}"],
        "om_assessed": [f"Reports assessed for eligibility {_n(om.reports.assessed)}"]
        + ([f"  awaiting assessment {_n(om.reports.awaiting)}"] if om.reports.awaiting else []),
        "om_excl": _excluded(om.reports),
        "included": [f"Studies included in review {_n(c.studies_included)}",
                     f"Reports of included studies {_n(c.reports_included)}"],
    }


def figure(counts: PrismaCounts, title: str | None = None, note: str | None = None) -> plt.Figure:
    """The diagram as a matplotlib Figure (inches as data units)."""
    x_db, x_dbs = BAND_W + GAP, BAND_W + GAP + MAIN_W + GAP
    x_om = x_dbs + SIDE_W + 2 * GAP
    x_oms = x_om + MAIN_W + GAP
    width = x_oms + SIDE_W + 0.1
    text = {k: _wrap(lines, _width(k, x_dbs + SIDE_W - x_db)) for k, lines in _boxes(counts).items()}
    h = {k: len(v) * _line() + 2 * PAD for k, v in text.items()}
    headers = {"db": _wrap(["Identification of studies via databases and registers"], x_dbs + SIDE_W - x_db, bold=True),
               "om": _wrap(["Identification of studies via other methods"], x_oms + SIDE_W - x_om, bold=True)}
    notes = _wrap([note], width - 0.1, MIN_FONT) if note else []
    # Rows, top to bottom: each row as tall as its tallest box.
    rows = [("identification", ["db_identified", "db_removed", "om_identified"]),
            ("screened", ["db_screened", "db_excluded"]),
            ("sought", ["db_sought", "db_not_retrieved", "om_sought", "om_not_retrieved"]),
            ("assessed", ["db_assessed", "db_excl", "om_assessed", "om_excl"]),
            ("included", ["included"])]
    header_h = max(len(lines) for lines in headers.values()) * _line() + 2 * PAD
    top_pad, row_gap = (0.45 if title else 0.1), 0.26
    # The stage labels are written vertically, so a row is at least as tall as its label.
    label_h = {"identification": _text_width("Identification", MIN_FONT, True) + 0.12,
               "included": _text_width("Included", MIN_FONT, True) + 0.12}
    row_h = {name: max([h[k] for k in keys] + [label_h.get(name, 0)]) for name, keys in rows}
    note_h = len(notes) * _line(MIN_FONT) + 0.15 if notes else 0.1
    height = top_pad + header_h + row_gap + sum(row_h.values()) + row_gap * (len(rows) - 1) + note_h
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")

    y = height - top_pad
    if title:
        ax.text(width / 2, height - top_pad / 2, title, ha="center", va="center", fontsize=TITLE_FONT, weight="bold")
    _box(ax, x_db, y - header_h, x_dbs + SIDE_W - x_db, header_h, "\n".join(headers["db"]), HEADER_COLOUR,
         bold=True, center=True)
    _box(ax, x_om, y - header_h, x_oms + SIDE_W - x_om, header_h, "\n".join(headers["om"]), OTHER_COLOUR,
         bold=True, center=True)
    y -= header_h + row_gap
    top: dict[str, float] = {}
    for name, _ in rows:
        top[name] = y
        y -= row_h[name] + row_gap

    pos = {}
    columns = {"db": x_db, "om": x_om}
    sides = {"db": x_dbs, "om": x_oms}
    for name, keys in rows:
        for k in keys:
            prefix = k.partition("_")[0]
            w = _width(k, x_dbs + SIDE_W - x_db)
            x = sides[prefix] if w == SIDE_W else columns.get(prefix, x_db)
            box_h = row_h[name] if name == "identification" else h[k]
            yb = top[name] - box_h
            colour = OTHER_COLOUR if prefix == "om" else "white"
            _box(ax, x, yb, w, box_h, "\n".join(text[k]), colour, center=k == "included")
            pos[k] = (x, yb, w, box_h)

    def mid_right(k):
        x, yb, w, bh = pos[k]
        return x + w, yb + bh / 2

    def mid_left(k):
        x, yb, w, bh = pos[k]
        return x, yb + bh / 2

    def bottom(k, dx=None):
        x, yb, w, bh = pos[k]
        return (x + (w / 2 if dx is None else dx)), yb

    def topc(k, dx=None):
        x, yb, w, bh = pos[k]
        return (x + (w / 2 if dx is None else dx)), yb + bh

    for a, b in (("db_identified", "db_screened"), ("db_screened", "db_sought"), ("db_sought", "db_assessed"),
                 ("om_identified", "om_sought"), ("om_sought", "om_assessed")):
        _arrow(ax, bottom(a), topc(b))
    _arrow(ax, bottom("db_assessed"), topc("included", MAIN_W / 2))
    # Other methods' assessed reports join the included box from the right, as in the template.
    ox, oy = bottom("om_assessed")
    ix, iy, iw, ih = pos["included"]
    ax.plot([ox, ox], [oy, iy + ih / 2], color="black", lw=0.8)
    _arrow(ax, (ox, iy + ih / 2), (ix + iw, iy + ih / 2))
    for a, b in (("db_identified", "db_removed"), ("db_screened", "db_excluded"), ("db_sought", "db_not_retrieved"),
                 ("db_assessed", "db_excl"), ("om_sought", "om_not_retrieved"), ("om_assessed", "om_excl")):
        _arrow(ax, mid_right(a), (pos[b][0], mid_right(a)[1]))

    bands = [("Identification", top["identification"], top["identification"] - row_h["identification"]),
             ("Screening", top["screened"], top["assessed"] - row_h["assessed"]),
             ("Included", top["included"], top["included"] - row_h["included"])]
    for label, y_top, y_bottom in bands:
        ax.add_patch(FancyBboxPatch((0.05, y_bottom), BAND_W - 0.05, y_top - y_bottom,
                                    boxstyle="round,pad=0,rounding_size=0.06", fc=BAND_COLOUR, ec="none"))
        ax.text(0.05 + (BAND_W - 0.05) / 2, (y_top + y_bottom) / 2, label, rotation=90, ha="center",
                va="center", fontsize=MIN_FONT, weight="bold")
    if notes:
        ax.text(0.05, note_h - 0.1, "\n".join(notes), ha="left", va="top", fontsize=MIN_FONT, style="italic",
                linespacing=SPACING)
    return fig


def _width(key: str, full: float) -> float:
    if key == "included":
        return full
    side = key.partition("_")[2] in ("removed", "excluded", "not_retrieved", "excl")
    return SIDE_W if side else MAIN_W


def _wrap(lines: list[str], box_width: float, size: float = FONT, bold: bool = False) -> list[str]:
    """Wrap each line to the box's inner width by measured text width; continuation lines are
    indented under their item. Words are never split; "(n = 12)" never breaks (no-break spaces)."""
    room = box_width - 2 * PAD
    out = []
    for line in lines:
        indent = line[: len(line) - len(line.lstrip())]
        current = ""
        for word in line.split(" ")[len(indent):] if indent else line.split(" "):
            candidate = f"{current} {word}" if current else f"{indent}{word}"
            if current and _text_width(candidate, size, bold) > room:
                out.append(current)
                current = f"{indent}  {word}"
            else:
                current = candidate
        out.append(current)
    return out


def _box(ax, x, y, w, h, text, colour, bold=False, center=False):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="square,pad=0", fc=colour, ec="black", lw=0.8))
    if center:
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=FONT,
                weight="bold" if bold else "normal", linespacing=SPACING)
    else:
        ax.text(x + PAD, y + h - PAD, text, ha="left", va="top", fontsize=FONT, linespacing=SPACING)


def _arrow(ax, start, end):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=10, color="black", lw=0.8,
                                 shrinkA=0, shrinkB=0))


def draw(counts: PrismaCounts, path: str | Path, title: str | None = None, note: str | None = None) -> list[Path]:
    """Write ``<path>.png`` (:data:`DPI`) and ``<path>.svg`` atomically; returns both paths."""
    fig = figure(counts, title, note)
    written = []
    try:
        for suffix, dpi in ((".png", DPI), (".svg", None)):
            buffer = io.BytesIO()
            # A fixed date keeps reruns byte-identical; the flow, not the clock, is the content.
            metadata = {"Date": None} if suffix == ".svg" else {}
            fig.savefig(buffer, format=suffix[1:], facecolor="white", metadata=metadata, dpi=dpi or "figure")
            written.append(atomic_write_bytes(Path(path).with_suffix(suffix), buffer.getvalue()))
    finally:
        plt.close(fig)
    return written
