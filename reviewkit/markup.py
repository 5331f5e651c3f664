"""The one path by which text reaches HTML, and values written as readers read them.

Any string that ends up in the report (from a snapshot, the protocol, the screening sheets, the
extraction table, the article's claims or the run's parameters) is escaped by :func:`escape`,
MarkupSafe's escape, the function Jinja2's autoescape calls, either directly (a table cell) or
through a template rendered by :func:`render` (Jinja2, autoescape on). Nothing else turns data
into markup; notebooks show tables through ``reviewkit.notebook.show_table``, which calls
:func:`reader_frame` and :func:`escape`.

:func:`reader_text` writes one value as a reader expects it: a missing value as an em dash (or
the words given), booleans as yes/no, lists as comma-separated text, a code label such as
``exists_with_errors`` as words, whole numbers without ``.0``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import date, datetime, time
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from markupsafe import Markup
from markupsafe import escape as _escape

if TYPE_CHECKING:
    import pandas as pd

MISSING = "\u2014"  # em dash: "nothing here", without the word None or nan
_CODE_LABEL = re.compile(r"[a-z]+(?:_[a-z]+)+")  # exists_with_errors, not_found, title_abstract


def escape(value: object) -> Markup:
    """``value`` as HTML text: ``<``, ``>``, ``&`` and quotes become entities (MarkupSafe, as Jinja2 escapes)."""
    return _escape(value)


@lru_cache(maxsize=1)
def _environment():
    from jinja2 import Environment, StrictUndefined

    # autoescape on for every template: a value is text unless a template marks it otherwise
    return Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                       keep_trailing_newline=False)


def render(template: str, **context: Any) -> Markup:
    """Render a Jinja2 template string with autoescape: every ``{{ value }}`` is escaped, except values
    that are already markup (a fragment :func:`render` returned). The result is markup, so fragments nest."""
    return Markup(_environment().from_string(template).render(**context))  # noqa: S704 (autoescaped above)


def words(label: object) -> str:
    """A code label in words: ``exists_with_errors`` → ``exists with errors``; other text unchanged."""
    text = str(label)
    return text.replace("_", " ") if _CODE_LABEL.fullmatch(text) else text


def is_missing(value: object) -> bool:
    """None, NaN, pandas' NA and NaT, and empty or blank text (a list is never missing: it may be empty)."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, set, frozenset, dict)) or type(value).__name__ == "ndarray":
        return False
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def reader_text(value: object, missing: str = MISSING) -> str:
    """One value as a reader reads it.

    Missing → ``missing`` (an em dash unless given, e.g. "not reported"); True/False → yes/no; a list,
    tuple, set or array → its items, comma-separated; a whole number → no decimals; another float →
    up to six significant digits; a code label (``not_found``) → words; anything else → its text.
    """
    if isinstance(value, (list, tuple, set, frozenset)) or type(value).__name__ == "ndarray":
        items = [reader_text(v, "") for v in value]  # type: ignore[attr-defined]
        return ", ".join(i for i in items if i) or missing
    if is_missing(value):
        return missing
    if isinstance(value, bool) or type(value).__name__ in ("bool", "bool_"):  # numpy's bool too
        return "yes" if value else "no"
    if isinstance(value, float) or type(value).__name__.startswith("float"):
        number = float(value)  # type: ignore[arg-type]
        return str(int(number)) if number.is_integer() and abs(number) < 1e15 else f"{number:.6g}"
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat(sep=" ", timespec="minutes")
    if isinstance(value, date):
        return value.isoformat()
    return words(value)


def reader_frame(frame: pd.DataFrame, *, labels: Mapping[str, str] | None = None, keep: Collection[str] = (),
                 missing: str | Mapping[str, str] = MISSING, index: bool = False) -> pd.DataFrame:
    """A copy of ``frame`` in which every cell, column label and (``index=True``) index label is reader text.

    Parameters
    ----------
    labels : mapping, optional
        Column → heading, e.g. ``{"n_t": "n (ketamine)"}``; other snake_case headings become words.
    keep : collection of str
        Columns whose text is shown as it is (ids and keys such as ``row_id``): not turned into words.
    missing : str or mapping
        What a missing value reads as: one text for all columns, or per column (default an em dash).
    index : bool
        Keep the index (as reader text) rather than dropping it.
    """
    labels = dict(labels or {})
    out = frame.copy() if index else frame.reset_index(drop=True)
    for column in out.columns:
        gap = missing.get(column, MISSING) if isinstance(missing, Mapping) else missing
        verbatim = column in keep
        out[column] = [gap if is_missing(v) else (str(v) if verbatim and isinstance(v, str) else reader_text(v, gap))
                       for v in out[column]]
    out.columns = [labels.get(c, words(c)) if isinstance(c, str) else reader_text(c) for c in out.columns]
    if index:
        out.index = [reader_text(i, "") for i in out.index]
        out.index.name = words(frame.index.name) if frame.index.name else None
    return out
