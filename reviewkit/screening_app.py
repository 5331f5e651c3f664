"""A screening app for JupyterLab: one record at a time, most likely include first, on the sheets.

::

    from reviewkit.screening_app import ScreeningApp
    ScreeningApp(review, stage="title_abstract", reviewer="reviewer1")   # a Review, a Project or a folder

Two parts. :class:`ScreeningSession` is the logic, with no widgets (tests and scripts drive it):
it reads a stage's sheet, serves the unscreened records in the relevance model's order
(``reviewkit.prioritise``; retrained after every decision, hint order before there is anything to
learn from), and writes every decision at once through ``reviewkit.screening.save_sheet``: the same
lock, atomic write and compare-before-write as ``reviewkit screen``, so an entry someone saved in
the CSV or XLSX meanwhile is merged in, and a cell both changed is refused with nothing written.
:class:`ScreeningApp` puts ipywidgets around it: the record with the protocol's terms highlighted
(escaped first), include / exclude / maybe / undo buttons and keyboard shortcuts, the exclusion
reason, a note, progress and stopping guidance.

What a decision writes (only the reviewer's own column and the cells that go with it):

* include / exclude in the reviewer's column (``reviewer1``, ``reviewer2`` or ``final``);
* an exclusion's reason in ``exclusion_reason`` (required at full text); when the cell already
  holds another reviewer's different reason, it is kept and this one goes to ``notes``; a ``final``
  include clears a reason there (the sheet refuses a reason on a final include);
* at full text, ``retrieved`` becomes ``yes`` when blank (a full text was read);
* a note, appended to ``notes`` as ``reviewer1: text``;
* maybe is not a decision (the sheets know include and exclude only): the record stays unscreened
  (PRISMA counts it as awaiting), ``notes`` gets ``maybe (reviewer1)``, the progress line counts it
  as still to decide and the app serves it again after every other record;
* not retrieved (full text only): the report could not be obtained. ``retrieved`` becomes ``no``,
  as a person marks it in the sheet and as PRISMA 2020 counts "reports not retrieved"; ``notes``
  gets ``not retrieved (reviewer1)``; no decision column is written (the sheet refuses a final
  decision on a report not retrieved) and the report leaves every reviewer's queue.

The ``priority`` column (for people who screen in a spreadsheet) is rewritten with every action, in
every session: the rows still awaiting a decision in the session's column, ranked by the model
trained on that column's decisions (the order this app serves them, maybes kept at their rank; the
same numbers ``reviewkit.prioritise.with_priority`` gives when that column is read as ``final``).
``reviewkit screen`` and a ``final`` session rank by the ``final`` decisions; a ``reviewer1`` or
``reviewer2`` session by that reviewer's, because during dual screening ``final`` is blank and a
priority learned from it would never leave hint order. The column holds the order of whoever
wrote last; it is never a decision.

The XLSX copy may lag the CSV by a few decisions (see :class:`ScreeningSession`); it catches up
when nothing is left to screen, on :meth:`ScreeningSession.close` (the app's *Save and close*
button) and when the Python process ends normally (a kernel shut down or restarted), never
contradicting the CSV meanwhile.

Every action is also appended to ``screening_log.jsonl`` in the screening folder (time, stage,
reviewer, record, action, whether it was part of a random sample): the order of decisions, which
the sheets do not keep, for "decisions since the last include" and the random-sample recall
estimate. Decisions typed into the sheets have no time: they count as made before the logged ones.

The app never stops on its own and never marks a record nobody screened.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import sys
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from .errors import ReviewkitError
from .io import contained, locked
from .markup import escape, render
from .prioritise import Prioritiser, StoppingStatistics, awaiting, draw_sample, stopping_statistics
from .project import Project
from .protocol import Protocol
from .review import Review
from .screening import (
    DECISION_COLUMNS,
    DECISIONS,
    LOCK_FILE,
    PRIORITY_COLUMN,
    STAGE_LABELS,
    SheetSource,
    _check_stage,
    load_sheet,
    save_sheet,
    validate_sheet,
)
from .screening_state import build_state, write_state

LOG_FILE = "screening_log.jsonl"
MAYBE = "maybe"
NOT_RETRIEVED = "not_retrieved"
#: Keyboard shortcuts: a key typed into the app's key box does this (digits 1-9 choose the reason;
#: ``n``, not retrieved, at full text only).
KEYS = {"i": "include", "e": "exclude", "m": MAYBE, "u": "undo", "n": NOT_RETRIEVED}
#: Words that often mark a record to exclude, when the protocol names none (``screening.exclusion_cues``).
DEFAULT_EXCLUSION_CUES = ("rat", "rats", "mice", "mouse", "animal", "in vitro", "review", "meta-analysis",
                          "editorial", "commentary", "letter", "case report", "protocol", "healthy volunteers")


def maybe_mark(reviewer: str) -> str:
    """What a maybe adds to ``notes`` (the sheets have no maybe decision)."""
    return f"{MAYBE} ({reviewer})"


def not_retrieved_mark(reviewer: str) -> str:
    """What marking a report not retrieved adds to ``notes``: who could not obtain it."""
    return f"not retrieved ({reviewer})"


def _without(notes: str, mark: str) -> str:
    """``notes`` without the app's ``mark`` (and the "; " that joined it); anything else as written."""
    if mark not in notes:
        return notes
    for joined in (f"; {mark}", f"{mark}; ", mark):
        notes = notes.replace(joined, "", 1) if joined in notes else notes
        if mark not in notes:
            break
    return notes


# --- highlighting -------------------------------------------------------------------------

def _pattern(terms: Sequence[str]) -> re.Pattern | None:
    words = sorted({t.strip().lower() for t in terms if t and t.strip()}, key=lambda t: (-len(t), t))
    if not words:
        return None
    # Literal terms (escaped), whole words, an optional plural s; longest first so "alcohol use
    # disorder" wins over "alcohol". No nested quantifier: matching time is linear in the text.
    alternatives = "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in words)
    return re.compile(rf"(?<!\w)(?:{alternatives})s?(?!\w)", re.IGNORECASE)


def highlight(text: object, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> Markup:
    """``text`` as HTML: every character escaped, inclusion terms in ``<mark class="rk-in">`` and
    exclusion cues in ``<mark class="rk-out">`` (a term in both lists counts as an inclusion term).

    Matches are found on the plain text and each piece is escaped on its own, so no markup in a
    title (``<script>``, ``&lt;``) survives and no entity is ever cut by a highlight."""
    plain = "" if text is None else str(text)
    spans: list[tuple[int, int, str]] = []
    for kind, pattern in (("rk-in", _pattern(include)), ("rk-out", _pattern(exclude))):
        if pattern is None:
            continue
        for m in pattern.finditer(plain):
            if not any(m.start() < end and start < m.end() for start, end, _ in spans):
                spans.append((m.start(), m.end(), kind))
    out, at = [], 0
    for start, end, kind in sorted(spans):
        out.append(str(escape(plain[at:start])))
        out.append(f'<mark class="{kind}">{escape(plain[start:end])}</mark>')
        at = end
    out.append(str(escape(plain[at:])))
    return Markup("".join(out))  # noqa: S704 (every piece escaped above)


def protocol_terms(protocol: Protocol) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(inclusion terms, exclusion cues) to highlight: the intervention's and every search's free-text
    terms; the protocol's ``screening.exclusion_cues`` (or :data:`DEFAULT_EXCLUSION_CUES`)."""
    include = list(protocol.intervention.text)
    for search in protocol.searches.values():
        include.extend(search.block.text)
    return tuple(dict.fromkeys(include)), tuple(protocol.exclusion_cues or DEFAULT_EXCLUSION_CUES)


# --- the session --------------------------------------------------------------------------

@dataclass(frozen=True)
class Action:
    """One action that can be undone: the cells of ``record_id`` before and after it."""

    record_id: str
    kind: str
    before: dict[str, str]
    after: dict[str, str]
    sample: bool = False


@dataclass
class Progress:
    """Where the reviewer stands at one stage.

    ``records`` are the stage's current rows (at full text, not those marked not retrieved, counted in
    ``not_retrieved``); ``unscreened`` those without a decision in the reviewer's column, maybes among
    them (``maybe``: still to decide, ``maybes`` their ids in the order they come back)."""

    records: int
    screened: int
    included: int
    excluded: int
    maybe: int
    unscreened: int
    stopping: StoppingStatistics | None = None
    sample_left: int = 0
    not_retrieved: int = 0
    maybes: tuple[str, ...] = ()


class ScreeningSession:
    """One reviewer screening one stage of a screening folder; see the module's docstring.

    Parameters
    ----------
    screening_dir : path
        The screening folder (its sheets must exist: ``reviewkit screen`` writes them).
    stage : {"title_abstract", "full_text"}
    reviewer : {"reviewer1", "reviewer2", "final"}
        The column this session writes and learns from.
    reasons : tuple of str
        The protocol's exclusion reasons for the stage.
    include_terms, exclusion_cues : sequence of str
        What the app highlights.
    seed : int
        Seed of the relevance model and of random samples.
    clock : callable, optional
        Time of an action (for tests); default now, in UTC.
    xlsx_every, xlsx_seconds : int, float
        Every decision is written to the CSV at once. The XLSX copy (slow to write: about a second
        for two thousand records) is written with it at the first decision after ``xlsx_every``
        decisions or ``xlsx_seconds`` seconds, whenever a decision changes a cell the XLSX may hold
        (an undo, a cleared reason), when someone saved either file meanwhile, and by :meth:`flush`.
        In between, reviewkit reads the decisions from the CSV: a cell filled in one file and blank
        in the other is taken.
    """

    def __init__(self, screening_dir: str | Path, stage: str, reviewer: str, reasons: Sequence[str], *,
                 include_terms: Sequence[str] = (), exclusion_cues: Sequence[str] = (), seed: int = 0,
                 clock: Callable[[], datetime] | None = None, xlsx_every: int = 20, xlsx_seconds: float = 60.0):
        self.folder = Path(screening_dir)
        self.stage = _check_stage(stage)
        if reviewer not in DECISION_COLUMNS:
            raise ReviewkitError(f"reviewer {reviewer!r}: use one of {', '.join(DECISION_COLUMNS)}")
        self.reviewer, self.reasons, self.seed = reviewer, tuple(reasons), seed
        self.include_terms, self.exclusion_cues = tuple(include_terms), tuple(exclusion_cues)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.history: list[Action] = []
        self.message = ""
        self._prioritiser: Prioritiser | None = None
        self._ids: tuple[str, ...] = ()
        self._hints: list[str] = []
        self._ranking: list[str] = []
        self.sample: list[str] = []  # record ids of the random sample being screened, in drawn order
        self.xlsx_every, self.xlsx_seconds = xlsx_every, xlsx_seconds
        self.reload()
        self.sample = self._open_sample()
        # A kernel shut down or restarted ends its Python process normally: the XLSX copy catches up then.
        # A weak reference, so a session nobody holds any more is not kept alive by the hook.
        ref = weakref.ref(self)

        def at_exit() -> None:
            session = ref()
            if session is not None:
                session._flush_at_exit()

        atexit.register(at_exit)

    @classmethod
    def open(cls, review: Review, stage: str = "title_abstract", reviewer: str = "reviewer1", *, seed: int = 0,
             refresh: bool = True) -> ScreeningSession:
        """A session on a review's screening folder; ``refresh`` first brings the sheets up to date
        as ``reviewkit screen`` does (new records, full-text candidates, priorities), from the files
        as they are now (not the state ``review`` may have built earlier)."""
        if refresh:
            write_state(build_state(review.snapshot, review.screening_dir, review.protocol), review.screening_dir)
        include, cues = protocol_terms(review.protocol)
        return cls(review.screening_dir, stage, reviewer, review.protocol.screening_reasons.get(stage, ()),
                   include_terms=include, exclusion_cues=cues, seed=seed)

    # -- reading ---------------------------------------------------------------------------
    def reload(self) -> None:
        """Read the sheet again (entries people saved are taken) and rerank."""
        sheet, source = load_sheet(self.folder, self.stage, self.reasons)
        if sheet is None:
            raise ReviewkitError(f"{self.folder}: no {STAGE_LABELS[self.stage]} sheet yet; run `reviewkit screen` "
                                 "(or open the app with refresh=True) first")
        self._take(sheet, source)
        self._synced(source)  # what the XLSX may hold: at most what both files hold together

    def _synced(self, source: SheetSource) -> None:
        self._xlsx_entries = source.entries.set_index("record_id") if source.entries is not None else None
        self._xlsx_fingerprint = source.fingerprint[1]
        self._pending, self._synced_at = 0, time.monotonic()

    def _needs_xlsx(self, record_id: str, after: dict[str, str]) -> bool:
        if self._pending + 1 >= self.xlsx_every or time.monotonic() - self._synced_at >= self.xlsx_seconds:
            return True
        known = self._xlsx_entries
        if known is None or record_id not in known.index:
            return True
        # A cell the XLSX may hold a value in, changed: the CSV alone would be read with the old value.
        return any(str(known.at[record_id, c]) not in ("", v) for c, v in after.items() if c in known.columns)

    def flush(self) -> None:
        """Write the XLSX copy now if decisions since the last one are in the CSV only."""
        if self._pending:
            written, source = save_sheet(self.folder, self.stage, self.sheet, self.source)
            self._take(written, source)
            self._synced(source)

    @property
    def pending(self) -> int:
        """Decisions in the CSV that the XLSX copy does not hold yet."""
        return self._pending

    def close(self) -> None:
        """End the session: the XLSX copy catches up with the CSV (:meth:`flush`). Every decision is in the
        CSV already; closing twice is harmless. The exit hook stays: a session used after closing is
        flushed again when the process ends."""
        self.flush()

    def _flush_at_exit(self) -> None:
        try:
            self.flush()
        except (ReviewkitError, OSError) as exc:  # never a traceback at exit; the CSV holds every decision
            print(f"reviewkit: {self.folder}: the XLSX copy of the {STAGE_LABELS[self.stage]} sheet was not "
                  f"updated ({exc}); the CSV holds every decision and reviewkit reads both", file=sys.stderr)

    def _take(self, sheet: pd.DataFrame, source: SheetSource) -> None:
        self.sheet, self.source = sheet.reset_index(drop=True), source
        self._rows = {rid: pos for pos, rid in enumerate(self.sheet["record_id"])}
        self._ids, self._hints, self._prioritiser = self._model(self.sheet)
        self._rerank()

    def _model(self, sheet: pd.DataFrame) -> tuple[tuple[str, ...], list[str], Prioritiser | None]:
        """The eligible records of ``sheet``, their hints and a relevance model over them (the current
        one while they are the same records: features are computed once per set)."""
        eligible = self._eligible(sheet)
        ids = tuple(sheet.loc[eligible, "record_id"])
        if ids == self._ids:
            return ids, self._hints, self._prioritiser
        rows = sheet.loc[eligible]
        texts = (rows["title"] + " " + rows["abstract"]).tolist()
        hints = rows["suggestion"].tolist()
        try:
            return ids, hints, Prioritiser(texts, hints, seed=self.seed) if ids else None
        except ReviewkitError:  # no word to rank by (empty titles and abstracts): hint order
            return ids, hints, None

    def _eligible(self, sheet: pd.DataFrame) -> np.ndarray:
        """Rows that are screened or screenable at this stage: current and, at full text, not marked not retrieved."""
        current = sheet["status"].eq("").to_numpy(dtype=bool, copy=True)
        if self.stage == "full_text":
            current &= sheet["retrieved"].ne("no").to_numpy(dtype=bool)
        return current

    def _labels(self, column: str) -> list[int | None]:
        values = self.sheet.set_index("record_id").loc[list(self._ids), column]
        return [{"include": 1, "exclude": 0}.get(v) for v in values]

    def _rerank(self) -> None:
        if self._prioritiser is None:
            tiers = np.array([{"check": 1, "exclude": 2}.get(h, 0) for h in self._hints], dtype=int)
            order = np.lexsort((np.arange(len(self._ids)), tiers)) if self._ids else np.arange(0)
        else:
            order = self._prioritiser.rank(self._labels(self.reviewer))
        ranked = [self._ids[p] for p in order]
        maybes = [rid for rid in ranked if self._is_maybe(rid)]
        self._ranking = [rid for rid in ranked if not self._is_maybe(rid)] + maybes

    def _cell(self, record_id: str, column: str) -> str:
        return str(self.sheet.iat[self._rows[record_id], self.sheet.columns.get_loc(column)])

    def is_maybe(self, record_id: str) -> bool:
        """Whether this reviewer marked the record maybe (and has not decided it since)."""
        return self._undecided(record_id) and self._is_maybe(record_id)

    def _is_maybe(self, record_id: str) -> bool:
        return maybe_mark(self.reviewer) in self._cell(record_id, "notes")

    def _undecided(self, record_id: str) -> bool:
        return record_id in self._rows and self._cell(record_id, self.reviewer) == "" and \
            self._cell(record_id, "status") == "" and \
            not (self.stage == "full_text" and self._cell(record_id, "retrieved") == "no")

    @property
    def sample_left(self) -> list[str]:
        """The random sample's records still to screen, in drawn order (maybes last)."""
        left = [rid for rid in self.sample if self._undecided(rid)]
        return [rid for rid in left if not self._is_maybe(rid)] + [rid for rid in left if self._is_maybe(rid)]

    @property
    def current(self) -> str | None:
        """The record to screen now: the random sample's next one while a sample is open, else the
        highest-ranked unscreened record (maybes last); None when nothing is left."""
        left = self.sample_left
        if left:
            return left[0]
        return next((rid for rid in self._ranking if self._undecided(rid)), None)

    def record(self, record_id: str | None = None) -> dict[str, str]:
        rid = record_id or self.current
        if rid is None:
            raise ReviewkitError("no record left to screen")
        return {c: self._cell(rid, c) for c in self.sheet.columns}

    def queue(self) -> list[str]:
        """The records still to screen, in the order the app serves them."""
        first = self.sample_left
        served = set(first)
        return first + [rid for rid in self._ranking if rid not in served and self._undecided(rid)]

    # -- writing ---------------------------------------------------------------------------
    def decide(self, decision: str, reason: str = "", note: str = "") -> str:
        """Record ``decision`` for the current record; returns its id.

        Parameters
        ----------
        decision : {"include", "exclude", "maybe", "not_retrieved"}
            ``not_retrieved`` (full text only) marks the report not retrieved (:meth:`not_retrieved`).
        reason : str
            An exclusion reason from the protocol's list (required for a full-text exclusion).
        note : str
            Appended to ``notes`` as ``reviewer: note``.
        """
        decision = decision.strip().lower()
        if decision == NOT_RETRIEVED:
            return self.not_retrieved(note)
        if decision not in (*DECISIONS, MAYBE):
            raise ReviewkitError(f"{decision!r} is not include, exclude, maybe or not_retrieved")
        rid = self.current
        if rid is None:
            raise ReviewkitError("no record left to screen")
        reason = reason.strip()
        if reason and reason not in self.reasons:
            raise ReviewkitError(f"{reason!r} is not a {STAGE_LABELS[self.stage]} reason in the protocol")
        if decision == "exclude" and self.stage == "full_text" and not reason:
            raise ReviewkitError("a full-text exclusion needs a reason from the protocol's list")
        before = {c: self._cell(rid, c) for c in (self.reviewer, "exclusion_reason", "notes")
                  + (("retrieved",) if self.stage == "full_text" else ())}
        after = dict(before)
        notes = [_without(before["notes"], maybe_mark(self.reviewer))]  # what people wrote stays as written
        if decision == MAYBE:
            notes.append(maybe_mark(self.reviewer))
        else:
            after[self.reviewer] = decision
            if self.stage == "full_text" and not before["retrieved"]:
                after["retrieved"] = "yes"
        if decision == "exclude" and reason:
            if before["exclusion_reason"] in ("", reason) or self.reviewer == "final":
                after["exclusion_reason"] = reason
            else:  # another reviewer's reason stays; this one is kept beside it
                notes.append(f"{self.reviewer} reason: {reason}")
        if decision == "include" and self.reviewer == "final":
            after["exclusion_reason"] = ""
        if note.strip():
            notes.append(f"{self.reviewer}: {' '.join(note.split())}")
        after["notes"] = "; ".join(n for n in notes if n)
        sample = rid in self.sample
        self._apply(rid, before, after)
        self.history.append(Action(rid, decision, before, after, sample))
        self._log(rid, decision, reason=after["exclusion_reason"] if decision == "exclude" else "", sample=sample)
        self.message = f"{rid}: {decision}" + (f" ({reason})" if reason and decision == "exclude" else "")
        return rid

    def not_retrieved(self, note: str = "") -> str:
        """Mark the current report not retrieved (full text only); returns its id.

        Writes ``retrieved = no`` (what PRISMA 2020 counts as a report not retrieved, and what a person
        types in the sheet) and ``not retrieved (reviewer)`` in ``notes``; no decision column. The report
        leaves every reviewer's queue; :meth:`undo` brings it back.
        """
        if self.stage != "full_text":
            raise ReviewkitError("not retrieved is a full-text decision (a report sought but not obtained)")
        rid = self.current
        if rid is None:
            raise ReviewkitError("no record left to screen")
        if self._cell(rid, "final"):
            # The sheet refuses both at once; say which cell stands in the way instead of the rule.
            raise ReviewkitError(f"{rid} has a final decision ({self._cell(rid, 'final')}); clear it in the sheet "
                                 "before marking the report not retrieved")
        before = {c: self._cell(rid, c) for c in ("retrieved", "notes")}
        notes = [_without(before["notes"], maybe_mark(self.reviewer)), not_retrieved_mark(self.reviewer)]
        if note.strip():
            notes.append(f"{self.reviewer}: {' '.join(note.split())}")
        after = {"retrieved": "no", "notes": "; ".join(n for n in notes if n)}
        sample = rid in self.sample
        self._apply(rid, before, after)
        self.history.append(Action(rid, NOT_RETRIEVED, before, after, sample))
        self._log(rid, NOT_RETRIEVED, sample=sample)
        self.message = f"{rid}: not retrieved (PRISMA: reports not retrieved)"
        return rid

    def undo(self) -> str | None:
        """Undo this session's last action (its cells back as they were); None when there is none.

        Refused, with nothing written, when one of its cells was changed in the sheet since."""
        if not self.history:
            self.message = "nothing to undo"
            return None
        action = self.history[-1]
        if action.record_id not in self._rows:
            raise ReviewkitError(f"{action.record_id} is no longer in the sheet; nothing was undone")
        changed = [c for c, v in action.after.items() if self._cell(action.record_id, c) != v]
        if changed:
            raise ReviewkitError(f"{action.record_id}: {', '.join(changed)} changed in the sheet since; "
                                 "undo refused so that change is kept")
        self._apply(action.record_id, action.after, action.before)
        self.history.pop()
        self._log(action.record_id, "undo", sample=action.sample)
        self.message = f"undone: {action.record_id} {action.kind}"
        return action.record_id

    def _apply(self, record_id: str, before: dict[str, str], after: dict[str, str]) -> None:
        sheet = self.sheet.copy()
        row = self._rows[record_id]
        for column, value in after.items():
            sheet.iat[row, sheet.columns.get_loc(column)] = value
        # The row as the sheet's rules read it (a reason on a final include, a decision on a report not retrieved).
        validate_sheet(sheet.iloc[[row]], self.stage, self.reasons, f"{self.stage} sheet")
        sheet = self._with_priority(sheet)  # every session keeps it current (see the module's docstring)
        xlsx = self._needs_xlsx(record_id, after)
        try:
            written, source = save_sheet(self.folder, self.stage, sheet, self.source, xlsx=xlsx)
        except ReviewkitError:
            self.reload()  # show what the sheet holds now; this action was not recorded
            raise
        self._take(written, source)
        if xlsx or source.fingerprint[1] != self._xlsx_fingerprint:  # written (or merged into) as well
            self._synced(source)
        else:
            self._pending += 1

    def _with_priority(self, sheet: pd.DataFrame) -> pd.DataFrame:
        """``sheet`` with the priority column ranked by this session's model on its own column's decisions.

        For ``final`` the numbers ``reviewkit screen`` writes (``reviewkit.prioritise.with_priority``); for a
        reviewer, the same computation on that reviewer's column. Blank where nothing awaits, and all blank
        when there is no word to rank by (as ``reviewkit screen`` leaves them)."""
        out = sheet.copy()
        out[PRIORITY_COLUMN] = pd.Series("", index=out.index, dtype=object)
        ids, _, model = self._model(sheet)  # a report just marked not retrieved (or brought back) changes them
        if model is None:
            return out
        labels = [{"include": 1, "exclude": 0}.get(v) for v in sheet.set_index("record_id").loc[list(ids), self.reviewer]]
        waiting = set(sheet.loc[awaiting(sheet, self.reviewer), "record_id"])
        ranked = [ids[p] for p in model.rank(labels) if ids[p] in waiting]
        rows = {rid: pos for pos, rid in enumerate(sheet["record_id"])}
        column = out.columns.get_loc(PRIORITY_COLUMN)
        for number, rid in enumerate(ranked, 1):
            out.iat[rows[rid], column] = str(number)
        return out

    # -- the log and stopping guidance -----------------------------------------------------
    @property
    def log_path(self) -> Path:
        return contained(self.folder, LOG_FILE, what="screening folder")

    def _log(self, record_id: str, action: str, *, reason: str = "", sample: bool = False,
             records: Sequence[str] = ()) -> None:
        entry: dict[str, Any] = {"time": self.clock().isoformat(timespec="seconds"), "stage": self.stage,
                                 "reviewer": self.reviewer, "record_id": record_id, "action": action}
        if reason:
            entry["reason"] = reason
        if sample:
            entry["sample"] = True
        if records:
            entry["records"] = list(records)
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        with locked(contained(self.folder, LOCK_FILE, what="screening folder")):
            fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def log_entries(self) -> list[dict]:
        """This stage's and reviewer's logged actions, in order (a line cut short by a crash is skipped)."""
        try:
            lines = self.log_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and entry.get("stage") == self.stage and entry.get("reviewer") == self.reviewer:
                out.append(entry)
        return out

    def _ordered_decisions(self) -> tuple[list[str], set[str]]:
        """Decided records in the order they were decided (unlogged ones first), and which were sampled."""
        last: dict[str, tuple[int, bool]] = {}
        for pos, entry in enumerate(self.log_entries()):
            rid, action = str(entry.get("record_id", "")), entry.get("action")
            if action in DECISIONS:
                last[rid] = (pos, bool(entry.get("sample")))
            elif action == "undo":
                last.pop(rid, None)
        decided = [rid for rid in self._ids if self._cell(rid, self.reviewer) in DECISIONS]
        unlogged = [rid for rid in decided if rid not in last]
        logged = sorted((rid for rid in decided if rid in last), key=lambda r: last[r][0])
        return unlogged + logged, {rid for rid in logged if last[rid][1]}

    def _open_sample(self) -> list[str]:
        """The random sample still being screened after a restart: the last drawn, if every decision
        since was one of its records."""
        entries = self.log_entries()
        starts = [i for i, e in enumerate(entries) if e.get("action") == "sample"]
        if not starts:
            return []
        drawn = [str(r) for r in entries[starts[-1]].get("records", [])]
        after = entries[starts[-1] + 1:]
        if any(e.get("action") in DECISIONS and not e.get("sample") for e in after):
            return []
        return drawn

    def stopping(self) -> StoppingStatistics | None:
        """Stopping statistics (``reviewkit.prioritise.stopping_statistics``) for this reviewer's decisions:
        decisions in the order made; the random sample's decisions are those made after the last decision
        in priority order."""
        if not self._ids:
            return None
        order, sampled = self._ordered_decisions()
        tail = 0
        while tail < len(order) and order[len(order) - 1 - tail] in sampled:
            tail += 1
        labels = [1 if self._cell(rid, self.reviewer) == "include" else 0 for rid in order]
        split = len(labels) - tail
        return stopping_statistics(labels[:split], len(self._ids), labels[split:])

    def start_sample(self, size: int | None = None) -> list[str]:
        """Draw a simple random sample of the unscreened records (default: the size the stopping
        statistics ask for) and serve it next; its decisions give the recall estimate."""
        stats = self.stopping()
        unscreened = sorted(rid for rid in self._ids if self._undecided(rid))
        if size is None:
            size = stats.sample_needed if stats and stats.sample_needed else min(len(unscreened), 20)
        size = min(size, len(unscreened))
        if size <= 0:
            raise ReviewkitError("no unscreened record to sample")
        picked = draw_sample(list(range(len(unscreened))), size, seed=self.seed + len(self.log_entries()))
        self.sample = [unscreened[i] for i in picked]
        self._log("", "sample", records=self.sample)
        self.message = f"random sample of {size} records drawn: screen them all, then read the recall estimate"
        return self.sample

    def progress(self) -> Progress:
        """Counts for the progress line (see :class:`Progress`)."""
        values = [self._cell(rid, self.reviewer) for rid in self._ids]
        maybes = tuple(rid for rid in self.queue() if self._is_maybe(rid))
        not_retrieved = 0
        if self.stage == "full_text":
            current = self.sheet["status"].eq("")
            not_retrieved = int((current & self.sheet["retrieved"].eq("no")).sum())
        return Progress(records=len(self._ids), screened=sum(v in DECISIONS for v in values),
                        included=values.count("include"), excluded=values.count("exclude"), maybe=len(maybes),
                        unscreened=sum(v == "" for v in values), stopping=self.stopping(),
                        sample_left=len(self.sample_left), not_retrieved=not_retrieved, maybes=maybes)


# --- the widgets ----------------------------------------------------------------------------

STYLE = """<style>
.rk-app mark.rk-in { background: #c6efce; color: #0b5323; }
.rk-app mark.rk-out { background: #ffc7ce; color: #7a0010; }
.rk-app .rk-meta { color: #555; } .rk-app .rk-hint { background: #fff4ce; padding: 2px 6px; }
.rk-app .rk-error { color: #a00; } .rk-app h3 { margin: 4px 0; }
</style>"""

RECORD_TEMPLATE = """<div class="rk-app">
<h3>{{ title }}</h3>
<div class="rk-meta">{{ authors }}{% if journal or year %} · {{ journal }} {{ year }}{% endif %} · {{ record_id }}
{% if sample %} · <b>random sample</b>{% endif %}{% if maybe %} · <b>your maybe: decide now</b>{% endif %}</div>
{% if hint %}<div class="rk-hint">Hint (never a decision): {{ hint }}</div>{% endif %}
{% if others %}<div class="rk-meta">{{ others }}</div>{% endif %}
<p>{{ abstract }}</p></div>"""


def _review(project: Review | Project | str | Path | None) -> Review:
    if isinstance(project, Review):
        return project
    if isinstance(project, Project):
        return Review(project)
    return Review(Project.find(project))


class ScreeningApp:
    """The screening app's widgets around a :class:`ScreeningSession`; shows itself in a notebook.

    Parameters
    ----------
    project : Review, Project, path or None
        The review (None: the project found from the working folder upwards, offline defaults).
    stage : {"title_abstract", "full_text"}
    reviewer : {"reviewer1", "reviewer2", "final"}
    seed : int
    refresh : bool
        Bring the sheets up to date first, as ``reviewkit screen`` does.
    session : ScreeningSession, optional
        Use this session instead of opening one (tests).
    """

    def __init__(self, project: Review | Project | str | Path | None = None, stage: str = "title_abstract",
                 reviewer: str = "reviewer1", *, seed: int = 0, refresh: bool = True,
                 session: ScreeningSession | None = None):
        import ipywidgets as w

        self.session = session or ScreeningSession.open(_review(project), stage, reviewer, seed=seed, refresh=refresh)
        s = self.session
        self.progress_html = w.HTML()
        self.record_html = w.HTML()
        self.reason = w.Dropdown(options=[("(exclusion reason)", "")] + [(f"{i}. {r}", r) for i, r in
                                                                         enumerate(s.reasons, 1)],
                                 value="", description="")
        self.note = w.Text(placeholder="note (saved with the decision)", layout=w.Layout(width="40em"))
        self.buttons = {
            "include": w.Button(description="Include (i)", button_style="success"),
            "exclude": w.Button(description="Exclude (e)", button_style="danger"),
            MAYBE: w.Button(description="Maybe (m)", button_style="warning"),
        }
        if s.stage == "full_text":  # a report sought but not obtained: PRISMA's "reports not retrieved"
            self.buttons[NOT_RETRIEVED] = w.Button(description="Not retrieved (n)",
                                                   tooltip="the full text could not be obtained")
        self.buttons["undo"] = w.Button(description="Undo (u)")
        for name, button in self.buttons.items():
            button.on_click(lambda _b, name=name: self.act(name))
        keys = "i e m n u" if s.stage == "full_text" else "i e m u"
        self.keys = w.Text(placeholder=f"click here, then type {keys} or 1-9 (reason)", continuous_update=True,
                           layout=w.Layout(width="28em"), description="keys")
        self.keys.observe(self._on_key, names="value")
        self.sample_button = w.Button(description="Screen a random sample", tooltip="for the recall estimate")
        self.sample_button.on_click(lambda _b: self._guarded(self.session.start_sample))
        self.close_button = w.Button(description="Save and close", tooltip="write the XLSX copy now and close the app")
        self.close_button.on_click(lambda _b: self.close())
        self.status_html = w.HTML()
        self.stopping_html = w.HTML()
        self.widget = w.VBox([
            w.HTML(STYLE), self.progress_html, self.record_html,
            w.HBox([self.reason, self.note]), w.HBox(list(self.buttons.values()) + [self.keys]),
            self.status_html, w.HBox([self.sample_button, self.close_button]), self.stopping_html,
        ])
        self.refresh()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    # -- actions -------------------------------------------------------------------------------
    def act(self, name: str) -> None:
        """What a button or key does: include, exclude, maybe, not retrieved (full text) or undo."""
        if name == "undo":
            self._guarded(self.session.undo)
        else:
            self._guarded(lambda: self.session.decide(name, self.reason.value, self.note.value), clear=True)

    def _guarded(self, action: Callable[[], Any], clear: bool = False) -> None:
        try:
            action()
        except ReviewkitError as exc:
            self.session.message = ""
            self.refresh(error=str(exc))
            return
        if clear:
            self.reason.value, self.note.value = "", ""
        self.refresh()

    def _guarded_flush(self) -> None:
        try:
            self.session.flush()
        except ReviewkitError as exc:
            self.session.message = f"the XLSX copy was not updated: {exc}"

    def close(self) -> None:
        """Write the XLSX copy (decisions are in the CSV already) and close the widgets, leaving a line that
        says so. When the XLSX cannot be written (someone's conflicting save), the app stays open and says why."""
        import ipywidgets as w

        try:
            self.session.close()
        except ReviewkitError as exc:
            self.refresh(error=f"the XLSX copy was not written, the app stays open: {exc}")
            return
        s = self.session
        done = w.HTML(str(render(
            "<div class='rk-app'>Closed: every decision of {{ reviewer }} at {{ stage }} is in {{ csv }} and "
            "{{ xlsx }}. Run the cell again to go on screening.</div>", reviewer=s.reviewer,
            stage=STAGE_LABELS[s.stage], csv=f"{s.stage}.csv", xlsx=f"{s.stage}.xlsx")))
        old = self.widget.children
        self.widget.children = (done,)
        for child in old:
            child.close()

    def _on_key(self, change: dict) -> None:
        typed = str(change.get("new") or "")
        if not typed:
            return
        self.keys.value = ""  # ready for the next key (this fires again with "", ignored above)
        for key in typed:  # keys typed faster than the box was cleared, in order
            self.press(key)

    def press(self, key: str) -> None:
        """One keyboard shortcut (:data:`KEYS`; a digit chooses the exclusion reason of that number)."""
        key = key.lower()
        full_text = self.session.stage == "full_text"
        if key in KEYS and (full_text or KEYS[key] != NOT_RETRIEVED):
            self.act(KEYS[key])
        elif key.isdigit() and 1 <= int(key) <= len(self.session.reasons):
            self.reason.value = self.session.reasons[int(key) - 1]
        else:
            self.refresh(error=f"no shortcut for {key!r}: i include, e exclude, m maybe, "
                               f"{'n not retrieved, ' if full_text else ''}u undo, 1-9 reason")

    # -- showing -----------------------------------------------------------------------------
    def refresh(self, error: str = "") -> None:
        s = self.session
        p = s.progress()
        stats = p.stopping
        remaining = "not estimated yet (screen a random sample)"
        if stats is not None and stats.remaining_estimate is not None:
            remaining = f"about {stats.remaining_estimate:.0f}" + (
                f" (at most {stats.remaining_upper})" if stats.remaining_upper is not None else "")
        self.progress_html.value = str(render(
            "<div class='rk-app'><b>{{ stage }}</b> as <b>{{ reviewer }}</b>: {{ screened }} of {{ records }} "
            "screened, {{ included }} included, {{ excluded }} excluded"
            "{% if full_text %} ({{ not_retrieved }} more not retrieved){% endif %}; {{ left }} still to screen"
            "{% if maybe %}, of which <b>maybe: {{ maybe }}, still to decide</b> (not screened: they come back after "
            "the others: {{ maybes }}){% endif %}"
            "{% if sample_left %} ({{ sample_left }} left in the random sample){% endif %}; "
            "estimated remaining includes: {{ remaining }}</div>",
            stage=STAGE_LABELS[s.stage], reviewer=s.reviewer, screened=p.screened, records=p.records,
            included=p.included, excluded=p.excluded, maybe=p.maybe, left=p.unscreened, sample_left=p.sample_left,
            remaining=remaining, full_text=s.stage == "full_text", not_retrieved=p.not_retrieved,
            maybes=", ".join(p.maybes[:5]) + (f" and {len(p.maybes) - 5} more" if len(p.maybes) > 5 else "")))
        rid = s.current
        if rid is None:
            self._guarded_flush()
            self.record_html.value = str(render("<div class='rk-app'><h3>Nothing left to screen at {{ stage }} as "
                                            "{{ reviewer }}.</h3></div>", stage=STAGE_LABELS[s.stage],
                                            reviewer=s.reviewer))
        else:
            rec = s.record(rid)
            others = ""
            if s.reviewer == "final":
                others = "; ".join(f"{c}: {rec[c]}" for c in ("reviewer1", "reviewer2") if rec[c])
            hint = f"{rec['suggestion']}: {rec['suggestion_reason']}" if rec["suggestion"] else ""
            terms = (s.include_terms, s.exclusion_cues)
            self.record_html.value = str(render(
                RECORD_TEMPLATE, title=highlight(rec["title"] or "(no title)", *terms),
                abstract=highlight(rec["abstract"] or "(no abstract)", *terms), authors=rec["authors"],
                journal=rec["journal"], year=rec["year"], record_id=rid, hint=hint, others=others,
                sample=rid in s.sample, maybe=s.is_maybe(rid)))
        self.status_html.value = str(render("<div class='rk-app'>{% if error %}<span class='rk-error'>{{ error }}"
                                        "</span>{% else %}{{ message }}{% endif %}</div>",
                                        error=error, message=s.message))
        self.stopping_html.value = str(stopping_html(stats))
        if stats is not None and stats.sample_needed:
            self.sample_button.description = f"Screen a random sample of {min(stats.sample_needed, p.unscreened)}"


def stopping_html(stats: StoppingStatistics | None) -> Markup:
    """Stopping guidance for people: facts, the method, the advice; never a decision to stop."""
    if stats is None:
        return Markup("")
    if stats.unscreened == 0:
        recall = "every record screened"
    elif stats.recall_estimate is not None and stats.sample_size:
        recall = (f"estimated recall {stats.recall_estimate:.1%} (95% lower bound {stats.recall_lower:.1%}, "
                  f"from a random sample of {stats.sample_size})")
    elif stats.recall_lower is not None:
        recall = (f"recall not estimated yet (for certain at least {stats.recall_lower:.1%}: as if every "
                  "unscreened record were an include)")
    else:
        recall = "recall not estimated yet (no include so far)"
    return render(
        "<details class='rk-app'><summary>Stopping guidance: {{ since }} since the last include; "
        "{{ recall }}</summary><p>{{ advice }}</p><p class='rk-meta'>Method: {{ method }}. "
        "The app never stops on its own; unscreened records stay unscreened (never excluded) and PRISMA counts "
        "only screened records.</p></details>",
        since=f"{stats.since_last_include} decision{'' if stats.since_last_include == 1 else 's'}",
        recall=recall, method=stats.method,
        advice=stats.advice.replace("(draw_sample)", "(the random sample button)"))


__all__ = ["KEYS", "ScreeningApp", "ScreeningSession", "highlight", "protocol_terms", "stopping_html"]
