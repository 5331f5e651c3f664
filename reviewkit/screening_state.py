"""The review's state from a snapshot and a screening folder, in one call.

``build_state`` reads the snapshot's PubMed records, the registrations its
register searches found (``reviewkit.ctgov``) and its other-method records
(``other_methods/*.ris|csv``), deduplicates them, and carries the
screening folder's decisions onto fresh sheets for both stages. It writes
nothing; ``write_state`` saves the sheets and the deduplication logs
atomically. Notebooks and the commands reach it through
``reviewkit.review.Review.state``.

``reviewkit run`` builds the state once and hands it to the notebooks it runs
(``handoff``): pickled into a private temporary file with an HMAC whose key
exists only in the run's environment, so no file planted on disk is ever
unpickled.

Screening folder layout::

    title_abstract.csv / .xlsx    full_text.csv / .xlsx     (sheets: reviewkit.screening)
    dedupe_merges.csv             every merge with its rule
    dedupe_review.csv             uncertain pairs left for a person
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import secrets
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import pandas as pd
from tqdm.auto import tqdm

from .ctgov import MANIFESTS as REGISTER_MANIFESTS
from .ctgov import REGISTER, load_register_records
from .dedupe import DATABASE_SOURCES, SEARCHED_SOURCES, DedupeResult, deduplicate
from .errors import ReviewkitError, SnapshotError
from .io import atomic_write_stream, atomic_write_text
from .other_methods import read_other_methods_folder
from .prioritise import with_priority
from .protocol import Protocol
from .records import load_records
from .screening import (
    STAGES,
    Agreement,
    SheetUpdate,
    agreement,
    build_sheet,
    conflicts,
    load_sheet,
    update_sheet,
    write_sheet,
)
from .snapshot import Snapshot

# Environment of the notebooks a `reviewkit run` executes: where its state is, and the key that signs it.
HANDOFF_FILE = "REVIEWKIT_STATE_FILE"
HANDOFF_KEY = "REVIEWKIT_STATE_KEY"

T = TypeVar("T")


@dataclass(frozen=True)
class ScreeningState:
    """``identified``: every record from every source before deduplication;
    ``dedupe``: the merged records and logs; ``updates``: per stage, the sheet
    with decisions carried over (``.sheet``), new and kept-but-gone ids;
    ``agreement`` / ``conflicts``: dual screening per stage; ``registers``: the
    protocol's registers, and per register the searches whose register search the
    snapshot holds (``register_searches``; none: not searched)."""

    snapshot: Path
    screening_dir: Path
    protocol_sha256: str
    sample: bool
    note: str
    search_keys: tuple[str, ...]
    identified: pd.DataFrame
    dedupe: DedupeResult
    updates: dict[str, SheetUpdate]
    agreement: dict[str, Agreement]
    conflicts: dict[str, pd.DataFrame]
    registers: tuple[str, ...] = ()
    register_searches: dict[str, tuple[str, ...]] = field(default_factory=dict)
    pubmed_dtypes: dict[str, Any] = field(default_factory=dict)

    def pubmed_records(self) -> pd.DataFrame | None:
        """The snapshot's PubMed records of every search, as ``reviewkit.records.load_records`` reads them:
        the first rows of ``identified``, each column of its own type again (putting the sources together
        makes some ``object``). None for a state that does not know those types. Reading them from the
        snapshot again costs 40 s at 100,000 records."""
        if not self.pubmed_dtypes or not set(self.pubmed_dtypes) <= set(self.identified.columns):
            return None
        source = self.identified["source"]
        rows = int(source.isin(DATABASE_SOURCES).sum())
        if not source.iloc[:rows].isin(DATABASE_SOURCES).all():
            return None  # not laid out as build_state lays it out
        return self.identified.iloc[:rows][list(self.pubmed_dtypes)].astype(self.pubmed_dtypes)

    def not_searched(self, search: str | None = None) -> dict[str, str]:
        """Registers of the protocol this snapshot holds no search of (overall, or for one search),
        each with the words a report shows instead of a count: never 0 for a register not searched."""
        where = "this sample" if self.sample else "this snapshot"
        return {r: f"not searched in {where}" for r in self.registers
                if not self.register_searches.get(r) or (search is not None and search not in self.register_searches[r])}

    def sheet(self, stage: str) -> pd.DataFrame:
        return self.updates[stage].sheet

    def with_sheet(self, stage: str, sheet: pd.DataFrame) -> ScreeningState:
        """This state with one stage's sheet replaced (e.g. after importing decisions)."""
        updates = {**self.updates, stage: replace(self.updates[stage], sheet=sheet)}
        return replace(self, updates=updates, agreement={**self.agreement, stage: agreement(sheet, stage)},
                       conflicts={**self.conflicts, stage: conflicts(sheet)})


def full_text_candidates(records: pd.DataFrame, title_abstract: pd.DataFrame) -> pd.DataFrame:
    """Reports sought: database records whose final title/abstract decision is
    include, then every record from other methods (PRISMA 2020 sends those
    straight to retrieval)."""
    current = title_abstract[title_abstract["status"] == ""]
    included = set(current.loc[current["final"] == "include", "record_id"])
    from_db = records["source"].isin(SEARCHED_SOURCES)
    return pd.concat([records[from_db & records["record_id"].isin(included)], records[~from_db]])


def build_state(snapshot: Snapshot | str | Path, screening_dir: str | Path, protocol: Protocol,
                progress: bool = False) -> ScreeningState:
    """Records identified (databases, registers, other methods), deduplicated, and the decisions of
    ``screening_dir`` on fresh sheets."""
    snap = snapshot if isinstance(snapshot, Snapshot) else Snapshot.open(snapshot)
    if not snap.search_keys():
        raise SnapshotError(f"snapshot {snap.root} has no searches recorded yet; run `reviewkit search` first")
    keys = tuple(protocol.searches)
    terms = tuple(protocol.intervention.text)
    # A context: a failing step closes the bar, so the error is printed on a line of its own.
    with tqdm(total=4, desc="screening state", disable=not progress) as steps:
        pubmed = load_records(snap)
        registered = load_register_records(snap)
        other = read_other_methods_folder(snap.folder("other_methods"), known_searches=set(keys))
        identified = pd.concat([f for f in (pubmed, registered, other) if not f.empty] or [pubmed],
                               ignore_index=True)
        pubmed_dtypes = dict(pubmed.dtypes)
        del pubmed, registered, other  # identified holds them now
        steps.update()
        dedupe = deduplicate(identified)
        steps.update()

        def stage_update(stage: str, candidates: pd.DataFrame) -> SheetUpdate:
            existing, source = load_sheet(screening_dir, stage, protocol.screening_reasons.get(stage, ()))
            update = update_sheet(existing, build_sheet(candidates, stage, terms), stage)
            # The sheet as read (its own copy of every title and abstract) is not held while the
            # relevance model is fitted, the run's peak.
            del existing
            update = replace(update, sheet=with_priority(update.sheet), source=source)
            steps.update()
            return update

        title_abstract = stage_update("title_abstract",
                                      dedupe.records[dedupe.records["source"].isin(SEARCHED_SOURCES)])
        full_text = stage_update("full_text", full_text_candidates(dedupe.records, title_abstract.sheet))
    updates = {"title_abstract": title_abstract, "full_text": full_text}
    return ScreeningState(
        snapshot=snap.root.resolve(), screening_dir=Path(screening_dir).resolve(), protocol_sha256=protocol.sha256,
        sample=snap.is_sample, note=snap.info.get("note", ""), search_keys=keys,
        identified=identified, dedupe=dedupe, updates=updates,
        agreement={s: agreement(u.sheet, s) for s, u in updates.items()},
        conflicts={s: conflicts(u.sheet) for s, u in updates.items()},
        registers=tuple(protocol.registers),
        register_searches={REGISTER: tuple(k for k in snap.search_keys(REGISTER_MANIFESTS) if k in keys)},
        pubmed_dtypes=pubmed_dtypes,
    )


def write_state(state: ScreeningState, screening_dir: str | Path) -> list[Path]:
    """Save sheets and deduplication logs; returns the files that changed.

    Saved to the folder the sheets were read from, each sheet is compared with what was read
    and entries people saved meanwhile are merged in (``reviewkit.screening.write_sheet``).
    """
    folder = Path(screening_dir)
    same = folder.resolve() == state.screening_dir
    changed = [folder / f"{stage}.csv" for stage in STAGES
               if write_sheet(folder, stage, state.sheet(stage), state.updates[stage].source if same else None)]
    for name, table in (("dedupe_merges.csv", state.dedupe.merges), ("dedupe_review.csv", state.dedupe.review)):
        path, text = folder / name, table.to_csv(index=False, lineterminator="\n")
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            atomic_write_text(path, text)
            changed.append(path)
    return changed


def awaiting_screening(state: ScreeningState, stage: str = "title_abstract") -> pd.DataFrame:
    """Records of one stage without a final decision; ``new`` marks those this run added."""
    update = state.updates[stage]
    sheet = update.sheet
    waiting = sheet[(sheet["status"] == "") & (sheet["final"] == "")]
    new = set(update.new_ids)
    return waiting.assign(new=waiting["record_id"].isin(new))[
        ["record_id", "new", "title", "authors", "year", "searches", "suggestion", "suggestion_reason"]
    ].reset_index(drop=True)


def _signed(key: bytes, data: bytes | memoryview) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


@contextmanager
def handoff(state: ScreeningState) -> Iterator[dict[str, str]]:
    """The environment that hands ``state`` to notebook kernels: a private file, signed with a fresh key.

    Yields the variables to add to the kernels' environment; the file is removed afterwards.
    """
    key = secrets.token_bytes(32)
    with tempfile.TemporaryDirectory(prefix="reviewkit-state-") as folder:
        path = Path(folder) / "state.pickle"
        _write_signed(state, path, key)
        del state  # the caller may let go of the state while the kernels run: this frame does not hold it
        yield {HANDOFF_FILE: str(path), HANDOFF_KEY: key.hex()}


class _Signing:
    """A file the pickler writes to, each piece also fed to an HMAC."""

    def __init__(self, file: BinaryIO, mac: hmac.HMAC):
        self.file, self.mac = file, mac

    def write(self, data: bytes | memoryview) -> int:
        self.mac.update(data)
        return self.file.write(data)


def _write_signed(state: ScreeningState, path: Path, key: bytes) -> None:
    """Write ``state`` pickled and signed with ``key`` (the HMAC of the pickle, then the pickle: the same
    bytes as ``pickle.dumps``), atomically and readable by this user only. Pickled straight into the
    file, signed as it goes: the pickle (160 MB at 100,000 records) is never held whole, nor copied
    to put its signature in front."""
    def write(file: BinaryIO) -> None:
        mac = hmac.new(key, digestmod=hashlib.sha256)
        file.write(bytes(mac.digest_size))  # the signature's place
        pickle.dump(state, _Signing(file, mac), protocol=pickle.HIGHEST_PROTOCOL)
        file.seek(0)
        file.write(mac.digest())

    atomic_write_stream(path, write, private=True)


@contextmanager
def handoff_built(build: Callable[[], ScreeningState],
                  summarise: Callable[[ScreeningState], T]) -> Iterator[tuple[dict[str, str], T]]:
    """As :func:`handoff`, for a state built by ``build()`` in a child process (forked; POSIX), which
    writes the signed file and returns only ``summarise(state)``: this process never holds the state.

    A state freed in a long-lived process leaves most of its memory with the allocator (about 1 GB
    at 100,000 records, while every notebook kernel loads its own copy); a child's goes back to the
    system when it exits. An error while building is raised here as it was raised there.

    Where "fork" is not a start method (Windows) or not a safe one (macOS: system libraries may hold
    locks a forked child inherits), the state is built in this process and handed as :func:`handoff`
    hands it.
    """
    import multiprocessing

    if not _can_fork():
        state = build()
        summary = summarise(state)
        with handoff(state) as env:
            del state  # handoff's file holds it now
            yield env, summary
        return
    key = secrets.token_bytes(32)
    with tempfile.TemporaryDirectory(prefix="reviewkit-state-") as folder:
        path = Path(folder) / "state.pickle"
        receive, send = multiprocessing.Pipe(duplex=False)

        def child() -> None:
            receive.close()
            try:
                state = build()
                _write_signed(state, path, key)
                answer: tuple[str, object] = ("ok", summarise(state))
            except BaseException as exc:  # noqa: BLE001 (every failure goes back to the parent, which raises it)
                answer = ("error", exc)
            try:
                send.send(answer)
            except Exception as exc:  # noqa: BLE001 (an exception that cannot be pickled: its words)
                send.send(("error", ReviewkitError(f"building the screening state failed: {exc!r}")))
            send.close()

        process = multiprocessing.get_context("fork").Process(target=child, name="reviewkit-state")
        process.start()
        send.close()
        try:
            kind, value = receive.recv()
        except EOFError:
            kind, value = "error", None
        finally:
            process.join()
            receive.close()
        if kind != "ok":
            if isinstance(value, BaseException):
                raise value
            raise ReviewkitError(f"building the screening state failed: its process ended with code {process.exitcode}")
        yield {HANDOFF_FILE: str(path), HANDOFF_KEY: key.hex()}, value


def _can_fork() -> bool:
    """Whether a child may be forked safely here: "fork" is a start method, and not macOS's."""
    import multiprocessing
    import sys

    return sys.platform != "darwin" and "fork" in multiprocessing.get_all_start_methods()


def handed_state(snapshot: Path, screening_dir: Path, protocol: Protocol) -> ScreeningState | None:
    """The state ``reviewkit run`` handed to this process, if it was built from the same inputs."""
    path, key = os.environ.get(HANDOFF_FILE), os.environ.get(HANDOFF_KEY)
    if not path or not key:
        return None
    try:
        blob = Path(path).read_bytes()
        key_bytes = bytes.fromhex(key)
    except (OSError, ValueError):
        return None
    signature, data = blob[:32], memoryview(blob)[32:]  # a view: no second copy of 160 MB at 100,000 records
    if not hmac.compare_digest(signature, _signed(key_bytes, data)):
        raise ReviewkitError(f"{HANDOFF_FILE}: the handed-over screening state is not the one reviewkit run wrote")
    state = pickle.loads(data)  # noqa: S301 (authenticated above with this run's key)
    same = (state.snapshot, state.screening_dir, state.protocol_sha256) == \
        (Path(snapshot).resolve(), Path(screening_dir).resolve(), protocol.sha256)
    return state if same else None
