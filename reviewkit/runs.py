"""Run manifests, and what changed since the previous run in the same output root.

An output root holds one dated folder per run (``reports/2026-01-31T070000Z/``).
Each finished run leaves ``run.json`` there: its parameters, versions, the
snapshot it used, and per search the count and the PMIDs retrieved, plus the
screening and PRISMA counts. Comparing two manifests is all a living review
needs to say what is new.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from .errors import ReviewkitError
from .io import atomic_write_text
from .markup import Markup, reader_text, render
from .prisma import PrismaCounts
from .redact import redact
from .screening_state import ScreeningState, awaiting_screening
from .snapshot import Snapshot

MANIFEST = "run.json"
FINISHED = ("ok", "count-drop")
#: Record ids the report's index lists at most in one place (new, dropped, awaiting screening): a first
#: run at 100,000 records has thousands; the run manifest lists them all.
IDS_LISTED = 100


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, filesystem-safe UTC timestamp, e.g. ``2026-01-31T070000Z``."""
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H%M%SZ")


def make_run_dir(output_root: Path, run_id: str) -> Path:
    """A fresh folder for this run; a second run in the same second gets a suffix."""
    output_root.mkdir(parents=True, exist_ok=True)
    for n in range(100):
        candidate = output_root / (run_id if n == 0 else f"{run_id}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise ReviewkitError(f"{output_root}: cannot create a run folder for {run_id} (100 already exist)")


def read_manifest(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ReviewkitError(f"{path}: cannot read run manifest ({exc})") from None


def previous_manifest(output_root: Path, before: str) -> dict | None:
    """The latest finished run in ``output_root`` whose id sorts before ``before``.

    Runs that failed, or were interrupted before writing a manifest, are not a
    baseline: comparing against them would report a broken run's gaps as news.
    """
    best = None
    for path in sorted(output_root.glob(f"*/{MANIFEST}")):
        if path.parent.name >= before:
            continue
        manifest = read_manifest(path)
        if manifest.get("status") in FINISHED:
            best = manifest
    return best


def seed_snapshot(output_root: Path, before: str, target: Path) -> Path | None:
    """Start a live run's snapshot from the previous finished live run's, and return where it came from.

    The searches then re-run ESearch, fetch only the records the snapshot does
    not hold yet, and report new and dropped PMIDs, instead of downloading
    everything again each week. Files are hard-linked where the filesystem
    allows (snapshot writes replace files, never modify them, so the previous
    run's snapshot stays as it was).
    """
    previous = previous_manifest(output_root, before)
    if not previous or previous.get("mode") != "live":
        return None
    source = output_root / previous["run_id"] / "snapshot"
    if not (source / "snapshot.json").is_file():
        return None
    # symlinks=True: a link planted in an earlier run's folder is copied as a link (which reading then
    # refuses), never followed: following one to /proc/self/environ would copy this process's credentials.
    shutil.copytree(source, target, symlinks=True, copy_function=_link_or_copy)
    return source


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def write_manifest(run_dir: Path, manifest: dict) -> Path:
    """``run.json``, redacted: it holds error messages and parameters, and is committed and uploaded."""
    return atomic_write_text(run_dir / MANIFEST, redact(json.dumps(manifest, indent=2, ensure_ascii=False)) + "\n")


def snapshot_facts(snapshot: Snapshot, state: ScreeningState, prisma: PrismaCounts, *, snapshot_path: str,
                   screening_path: str, searches: list[str] | None = None) -> dict:
    """What a run manifest records about the data it ran on.

    Computed from the snapshot and the screening state the notebooks were handed, not scraped
    from notebook outputs. Paths are given as the report shows them (relative to the project).
    """
    summary = search_summary(snapshot)
    if searches:
        summary = {k: v for k, v in summary.items() if k in searches}
    return {
        "snapshot": {"path": snapshot_path, **snapshot.info},
        "screening": screening_path,
        "searches": summary,
        "counts": prisma.boxes(),
        "prisma": prisma.to_dict(),
        "awaiting_screening": awaiting_screening(state)["record_id"].tolist(),
    }


def search_summary(snapshot: Snapshot) -> dict[str, dict]:
    """Per search: the PRISMA-S facts a rerun is compared on."""
    out = {}
    for key in snapshot.search_keys():
        m = snapshot.manifest(key)
        out[key] = {
            "count": m.get("count"),
            "pmids": sorted(str(p) for p in m.get("pmids", [])),
            "query": m.get("query"),
            "date_run": m.get("date_run"),
        }
    return out


def compare(previous: dict | None, current: dict) -> dict:
    """What changed between two run manifests: records per search, counts, screening backlog."""
    if previous is None:
        return {"previous_run": None}
    searches = {}
    keys = set(current.get("searches", {}))
    # A run limited to some searches (-p searches ...) says nothing about the others;
    # a full run that lacks a search the previous run had is a problem to report.
    if not current.get("parameters", {}).get("searches"):
        keys |= set(previous.get("searches", {}))
    for key in sorted(keys):
        before = previous.get("searches", {}).get(key)
        after = current.get("searches", {}).get(key)
        old = set(before["pmids"]) if before else set()
        new = set(after["pmids"]) if after else set()
        searches[key] = {
            "count_before": before["count"] if before else None,
            "count_after": after["count"] if after else None,
            "new_pmids": sorted(new - old),
            "dropped_pmids": sorted(old - new),
        }
    counts = {}
    old_counts, new_counts = previous.get("counts", {}), current.get("counts", {})
    for name in sorted(set(old_counts) | set(new_counts)):
        if old_counts.get(name) != new_counts.get(name):
            counts[name] = {"before": old_counts.get(name), "after": new_counts.get(name)}
    return {
        "previous_run": previous.get("run_id"),
        "searches": searches,
        "counts": counts,
        "awaiting_screening": current.get("awaiting_screening", []),
        "changed": any(s["new_pmids"] or s["dropped_pmids"] or s["count_before"] != s["count_after"]
                       for s in searches.values()) or bool(counts),
    }


def count_drops(changes: dict, allowed: int = 0) -> list[str]:
    """Searches whose PubMed count fell by more than ``allowed`` records since the previous run.

    A falling count usually means a query or database problem (a MeSH heading
    renamed, a filter applied by mistake), so a scheduled run must not pass
    quietly.
    """
    problems = []
    for key, s in changes.get("searches", {}).items():
        before, after = s["count_before"], s["count_after"]
        if before is None:
            continue
        if after is None:
            problems.append(f"search {key!r} ran in {changes['previous_run']} but not in this run")
        elif before - after > allowed:
            problems.append(
                f"search {key!r}: count fell from {before} to {after} since run {changes['previous_run']} "
                f"(dropped PMIDs: {', '.join(s['dropped_pmids'][:10]) or 'none listed'})"
            )
    return problems


def changes_text(changes: dict) -> list[str]:
    """The change summary as lines for the terminal."""
    if changes.get("previous_run") is None:
        return ["no earlier run in this output folder: nothing to compare"]
    lines = [f"compared with run {changes['previous_run']}:"]
    for key, s in changes["searches"].items():
        lines.append(
            f"  search {key}: {_fmt(s['count_before'], '-')} -> {_fmt(s['count_after'], '-')} records, "
            f"{len(s['new_pmids'])} new, {len(s['dropped_pmids'])} dropped"
        )
    for name, c in changes["counts"].items():
        lines.append(f"  {name}: {_fmt(c['before'], '-')} -> {_fmt(c['after'], '-')}")
    lines.append(f"  records awaiting screening: {len(changes['awaiting_screening'])}")
    if not changes["changed"]:
        lines.append("  no change")
    return lines


_CHANGES = """
{%- if previous is none -%}
<p>No earlier run in this output folder: nothing to compare.</p>
{%- else -%}
<p>Compared with run <code>{{ previous }}</code>{% if not changed %}: <strong>no change</strong>{% endif %}.</p>
<table><tr><th>search</th><th>count before</th><th>count now</th><th>new PMIDs</th><th>dropped PMIDs</th></tr>
{% for key, s in searches.items() %}<tr><td>{{ key }}</td><td>{{ show(s.count_before) }}</td><td>{{ show(s.count_after) }}</td>\
<td>{{ ids(s.new_pmids) }}</td><td>{{ ids(s.dropped_pmids) }}</td></tr>
{% endfor %}</table>
{% if counts %}<p>Counts that changed:</p><table><tr><th>count</th><th>before</th><th>now</th></tr>
{% for name, c in counts.items() %}<tr><td>{{ name }}</td><td>{{ show(c.before) }}</td><td>{{ show(c.after) }}</td></tr>
{% endfor %}</table>
{% endif %}
<p>Records awaiting screening: <strong>{{ waiting | length }}</strong>{% if waiting %} ({{ ids(waiting) }}){% endif %}</p>
{%- endif -%}"""


def changes_html(changes: dict) -> Markup:
    """What changed, for the report's index: rendered with autoescape (``reviewkit.markup``)."""
    return render(_CHANGES, previous=changes.get("previous_run"), changed=changes.get("changed"),
                  searches=changes.get("searches", {}), counts=changes.get("counts", {}),
                  waiting=changes.get("awaiting_screening", []), show=reader_text, ids=listed_ids)


def listed_ids(values) -> str:
    """Record ids as the index lists them: every one up to :data:`IDS_LISTED`, then how many more and where
    they all are ("PMID:1, PMID:2, ... and 9,400 more (run.json lists them all)")."""
    values = list(values or [])
    if len(values) <= IDS_LISTED:
        return reader_text(values)
    return f"{reader_text(values[:IDS_LISTED])} and {len(values) - IDS_LISTED:,} more ({MANIFEST} lists them all)"


def _fmt(value, missing: str) -> str:
    return missing if value is None else str(value)
