"""A snapshot folder: every exchange of a review's searches (E-utilities, ClinicalTrials.gov, Crossref), replayable.

Layout (docs/architecture.md)::

    snapshot.json          what this snapshot is (sample or live), when, from which protocol
    searches/<key>.json    one manifest per search (PRISMA-S fields)
    registers/ctgov/<key>.json   the same search in ClinicalTrials.gov
    exchanges/<id>.json    request parameters (never credentials), time, status, size, sha256
    exchanges/<id>.body    the raw response bytes

An exchange's id is a hash of the utility and its canonical parameters without
credentials or history handles, so the same logical request always lands on
the same file: replay is a lookup and a resumed run reuses what it recorded.
When the same request later gets a different answer (a living search's new
ESearch), the answer is stored beside the old one as ``<id>-<sha256[:12]>``;
nothing recorded is overwritten, so a manifest keeps replaying exactly the
exchanges it lists until a search that succeeded as a whole replaces it.
Replay takes, of a request's answers, the one a manifest lists, else the newest.

A snapshot is read as hostile input: every file is reached through names that
cannot leave the folder, no symbolic link is followed (``reviewkit.io.contained``),
and exchange ids and search keys are checked before they become file names.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from time import time as _now
from typing import Any

from . import __version__
from .errors import SnapshotError
from .io import atomic_write_bytes, atomic_write_json, contained, read_bytes, remove_stale_temporaries
from .redact import excerpt

# Never stored, never part of an exchange id (``mailto``: Crossref's contact address, should one be passed).
CREDENTIAL_PARAMS = frozenset({"api_key", "email", "mailto"})
# Not part of an exchange id: identify the client or a server-side session, not the request.
VOLATILE_PARAMS = CREDENTIAL_PARAMS | {"tool", "WebEnv", "webenv", "query_key"}
#: An exchange's name on disk: the request id, then, for a later different answer, its sha256's start.
EXCHANGE_NAME = re.compile(r"^[0-9a-f]{24}(?:-[0-9a-f]{12})?$")
SEARCH_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
# A folder listing is trusted only once the folder is older than this (file times move in clock ticks).
_RACY_SECONDS = 2.0
# Files a snapshot holds are small (an EFetch batch of 500 records is a few MB).
MAX_JSON_BYTES = 64 * 2**20


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clean_params(params: dict[str, Any]) -> dict[str, str]:
    """Parameters as they may be stored: strings, credentials removed."""
    return {k: str(v) for k, v in sorted(params.items()) if k not in CREDENTIAL_PARAMS and v is not None}


def exchange_id(utility: str, params: dict[str, Any]) -> str:
    canonical = {k: str(v) for k, v in params.items() if k not in VOLATILE_PARAMS and v is not None}
    blob = json.dumps([utility, sorted(canonical.items())], separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:24]


@dataclass(frozen=True)
class Exchange:
    id: str
    utility: str
    method: str
    params: dict[str, str]
    time: str
    status: int
    body: bytes


class Snapshot:
    """A snapshot folder on disk. Writing is append-only apart from manifests.

    A sample snapshot (``"sample": true``, such as the worked example's) is read-only: whoever
    asks, nothing is recorded into it. Only ``create`` of a new sample (the sample builder) writes one.
    """

    def __init__(self, root: str | Path, clock: Callable[[], str] = utcnow, *, writable: bool = True):
        self.root = Path(root)
        self.clock = clock
        self.writable = writable
        # (folder inode and mtime, when listed, names by request id): see _exchange_names
        self._listing: tuple[tuple[int, int], float, dict[str, list[str]]] | None = None

    # -- the snapshot itself -------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, *, sample: bool, note: str, protocol_sha256: str = "",
               clock: Callable[[], str] = utcnow, name: str | None = None) -> Snapshot:
        """A new snapshot folder (or the existing one). ``name`` (default: the folder's) names the
        screening folder its decisions live in, so a copy elsewhere keeps the same decisions."""
        snap = cls(root, clock)
        if snap.root.exists() and not snap.root.is_dir():
            raise SnapshotError(f"{snap.root} is a file, not a snapshot folder; name a folder (new or a snapshot)")
        if snap._file("snapshot.json").exists():
            existing = cls.open(root)
            existing.clock = clock
            return existing
        atomic_write_json(snap._file("snapshot.json"), {
            "name": name or snap.root.name,
            "sample": sample,
            "note": note,
            "created": clock(),
            "reviewkit_version": __version__,
            "protocol_sha256": protocol_sha256,
        })
        return snap

    @classmethod
    def open(cls, root: str | Path) -> Snapshot:
        snap = cls(root)
        if not snap._file("snapshot.json").is_file():
            raise SnapshotError(f"{snap.root} is not a reviewkit snapshot (no snapshot.json)")
        snap.writable = not snap.is_sample
        if snap.writable:  # what a killed writer left behind
            for folder in ((), ("exchanges",), ("searches",), ("registers", "ctgov"), ("lookups",)):
                remove_stale_temporaries(snap._file(*folder))
        return snap

    def _file(self, *names: str) -> Path:
        """A path inside the snapshot, refused if it leaves the folder or goes through a symbolic link."""
        return contained(self.root, *names, what=f"snapshot {self.root}")

    def _json(self, path: Path) -> Any:
        """A JSON file of the snapshot (never through a link); FileNotFoundError passes through."""
        data = read_bytes(path, MAX_JSON_BYTES)
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SnapshotError(f"{path}: not valid JSON ({type(exc).__name__}); was it edited or cut short?") from None

    def folder(self, name: str) -> Path:
        """A folder of the snapshot (e.g. ``other_methods``), checked like every path in it."""
        return self._file(name)

    def _check_writable(self) -> None:
        if not self.writable:
            raise SnapshotError(f"snapshot {self.root} is a sample and read-only; record live searches in a "
                                "snapshot of their own (e.g. `--snapshot live`)")

    @property
    def info(self) -> dict:
        try:
            info = self._json(self._file("snapshot.json"))
        except FileNotFoundError:
            raise SnapshotError(f"{self.root} is not a reviewkit snapshot (no snapshot.json)") from None
        if not isinstance(info, dict):
            raise SnapshotError(f"{self.root}/snapshot.json: must be a JSON object")
        return info

    @property
    def is_sample(self) -> bool:
        return bool(self.info.get("sample"))

    # -- exchanges -----------------------------------------------------------
    def _paths(self, name: str) -> tuple[Path, Path]:
        if not isinstance(name, str) or not EXCHANGE_NAME.match(name):
            raise SnapshotError(f"snapshot {self.root}: {excerpt(name)} is not an exchange id (24 hex digits, "
                                "optionally -12 more); refused")
        return self._file("exchanges", f"{name}.json"), self._file("exchanges", f"{name}.body")

    def _exchange_names(self) -> dict[str, list[str]]:
        """Recorded exchange names by request id (their first 24 characters), from one listing of the folder.

        A lookup per request scanned the folder (a few hundred files at 100,000 records, for each of
        hundreds of requests); the listing is kept and made again when the folder's modification time
        changes, and not trusted while that time is within ``_RACY_SECONDS`` of the listing (a file
        added in the same clock tick leaves it unchanged).
        """
        folder = self._file("exchanges")
        try:
            stat = folder.stat()
        except FileNotFoundError:
            return {}
        if not folder.is_dir():
            return {}
        stamp = (stat.st_ino, stat.st_mtime_ns)
        kept = self._listing
        if kept is not None and kept[0] == stamp and kept[1] - stat.st_mtime_ns / 1e9 > _RACY_SECONDS:
            return kept[2]
        listed_at = _now()
        names: dict[str, list[str]] = {}
        with os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name[:-5]
                if entry.name.endswith(".json") and EXCHANGE_NAME.match(name) and entry.is_file():
                    names.setdefault(name[:24], []).append(name)
        self._listing = (stamp, listed_at, names)
        return names

    def versions(self, utility: str, params: dict[str, Any]) -> list[str]:
        """The names of every recorded answer to this request: the first answer's, then later ones (name order)."""
        ex_id = exchange_id(utility, params)
        found = self._exchange_names().get(ex_id, [])
        return ([ex_id] if ex_id in found else []) + sorted(n for n in found if n != ex_id)

    def get(self, utility: str, params: dict[str, Any], among: Collection[str] | None = None) -> Exchange | None:
        """The recorded answer to a request: of those named in ``among`` if any is, else the newest; None if none."""
        names = [n for n in self.versions(utility, params) if self._paths(n)[1].is_file()]
        if among is not None and any(n in among for n in names):
            names = [n for n in names if n in among]
        if not names:
            return None
        exchanges = [self.load(n) for n in names]
        return max(exchanges, key=lambda e: (e.time, e.id))

    def load(self, ex_id: str) -> Exchange:
        meta_path, body_path = self._paths(ex_id)
        try:
            meta = self._json(meta_path)
            body = read_bytes(body_path)
        except FileNotFoundError:
            raise SnapshotError(f"{self.root}: exchange {ex_id} is listed but its files are missing") from None
        try:
            recorded = meta["sha256"]
            exchange = Exchange(ex_id, str(meta["utility"]), str(meta["method"]), dict(meta["params"]),
                                str(meta["time"]), int(meta["status"]), body)
        except (KeyError, TypeError, ValueError):
            raise SnapshotError(f"{meta_path}: not an exchange record (utility, method, params, time, status, "
                                "sha256)") from None
        if hashlib.sha256(body).hexdigest() != recorded:
            raise SnapshotError(f"{body_path}: content does not match its recorded sha256 (file altered?)")
        return exchange

    def name_of(self, utility: str, params: dict[str, Any], body: bytes) -> str:
        """The name under which this answer to this request is recorded (as a manifest lists it)."""
        sha = hashlib.sha256(body).hexdigest()
        for name in self.versions(utility, params):
            if self._json(self._paths(name)[0]).get("sha256") == sha:
                return name
        raise SnapshotError(f"snapshot {self.root}: this {utility} answer was never recorded")

    def put(self, utility: str, params: dict[str, Any], body: bytes, *, method: str = "GET",
            status: int = 200) -> Exchange:
        """Record an answer. An answer already recorded for the request is kept as it is; a different
        one goes beside the others (never over them), so every manifest still replays."""
        self._check_writable()
        ex_id = exchange_id(utility, params)
        sha = hashlib.sha256(body).hexdigest()
        for name in self.versions(utility, params):
            if self._json(self._paths(name)[0]).get("sha256") == sha:
                return self.load(name)
        name = f"{ex_id}-{sha[:12]}" if self._paths(ex_id)[0].exists() else ex_id
        meta_path, body_path = self._paths(name)
        stored = clean_params(params)
        time = self.clock()
        # Body first, metadata last: an exchange counts as recorded only once both exist.
        atomic_write_bytes(body_path, body)
        atomic_write_json(meta_path, {
            "utility": utility, "method": method, "params": stored, "time": time,
            "status": status, "bytes": len(body), "sha256": sha,
        })
        return Exchange(name, utility, method, stored, time, status, body)

    def referenced(self) -> set[str]:
        """The exchanges the snapshot's manifests list (searches and lookups): the answers replay uses."""
        names: set[str] = set()
        for folder in self.MANIFEST_FOLDERS:
            for key in self.search_keys(folder):
                names.update(self.manifest(key, folder).get("exchanges", []))
        names.update((self.lookups() or {}).get("exchanges", []))
        return names

    # -- manifests -----------------------------------------------------------
    # One manifest per search: ``searches/<key>.json`` (PubMed), ``registers/<register>/<key>.json``.
    MANIFEST_FOLDERS = ("searches", "registers/ctgov")

    def _manifest_path(self, key: str, folder: str = "searches") -> Path:
        if folder not in self.MANIFEST_FOLDERS:
            raise ValueError(f"no manifest folder {folder!r} (known: {', '.join(self.MANIFEST_FOLDERS)})")
        if not isinstance(key, str) or not SEARCH_KEY.match(key):
            raise SnapshotError(f"snapshot {self.root}: {excerpt(key)} is not a search key; refused")
        return self._file(*folder.split("/"), f"{key}.json")

    def write_manifest(self, key: str, manifest: dict, folder: str = "searches") -> Path:
        self._check_writable()
        return atomic_write_json(self._manifest_path(key, folder), manifest)

    def manifest(self, key: str, folder: str = "searches") -> dict:
        path = self._manifest_path(key, folder)
        try:
            manifest = self._json(path)
        except FileNotFoundError:
            raise SnapshotError(
                f"snapshot {self.root} has no {'search' if folder == 'searches' else folder} {key!r} "
                f"(known: {', '.join(self.search_keys(folder)) or 'none'})"
            ) from None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("exchanges", []), list):
            raise SnapshotError(f"{path}: not a search manifest (a JSON object with a list of exchanges)")
        return manifest

    def search_keys(self, folder: str = "searches") -> list[str]:
        if folder not in self.MANIFEST_FOLDERS:
            raise ValueError(f"no manifest folder {folder!r} (known: {', '.join(self.MANIFEST_FOLDERS)})")
        found = self._file(*folder.split("/"))
        if not found.is_dir():
            return []
        return sorted(p.stem for p in found.glob("*.json") if SEARCH_KEY.match(p.stem))

    # -- lookups (records fetched for citation checks, outside every search) --------
    def lookups(self) -> dict | None:
        """``lookups/manifest.json`` (the exchanges live citation checks fetched), None if there is none."""
        try:
            manifest = self._json(self._file("lookups", "manifest.json"))
        except FileNotFoundError:
            return None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("exchanges", []), list):
            raise SnapshotError(f"{self.root}/lookups/manifest.json: not a lookups manifest")
        return manifest

    def record_lookup(self, utility: str, params: dict[str, Any]) -> None:
        """List a recorded exchange in ``lookups/manifest.json`` so offline checks find its records."""
        self._check_writable()
        manifest: dict[str, Any] = self.lookups() or {
            "purpose": "records fetched by live citation checks", "pmids": [], "exchanges": []}
        recorded = self.get(utility, params)
        if recorded is None:
            raise SnapshotError(f"snapshot {self.root}: the {utility} lookup to list was never recorded")
        if recorded.id not in manifest["exchanges"]:
            manifest["exchanges"].append(recorded.id)
            manifest["pmids"] = sorted(set(manifest["pmids"]) | set(str(params.get("id", "")).split(",")) - {""},
                                       key=int)
            atomic_write_json(self._file("lookups", "manifest.json"), manifest)
