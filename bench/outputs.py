"""Where a benchmark leaves its figures: ``<name>.json`` (the numbers) and ``<name>.md`` (the tables
made from them) in its output folder, bench/results/ unless ``--out`` names another."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_results(folder: Path, name: str, result: Any, markdown: Callable[[Any], str], *, indent: int = 2,
                  tables_only: bool = False) -> str:
    """Write ``result`` to ``folder/<name>.json`` (``indent`` spaces, a newline at the end), then
    ``markdown(result)`` to ``folder/<name>.md``, both UTF-8, the folder made if missing; returns the
    Markdown. The numbers go first, so a table that fails to render loses no measurement (the
    benchmarks' ``--render`` and ``--report-only`` make the tables again: ``tables_only``)."""
    folder.mkdir(parents=True, exist_ok=True)
    if not tables_only:
        (folder / f"{name}.json").write_text(json.dumps(result, indent=indent) + "\n", encoding="utf-8")
    text = markdown(result)
    (folder / f"{name}.md").write_text(text, encoding="utf-8")
    return text
