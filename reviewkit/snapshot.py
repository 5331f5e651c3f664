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
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import __version__
from .errors import SnapshotError
from .io import atomic_write_bytes, atomic_write_json

# Never stored, never part of an exchange id (``mailto``: Crossref's contact address, should one be passed).
CREDENTIAL_PARAMS = frozenset({"api_key", "email", "mailto"})
# Not part of an exchange id: identify the client or a server-side session, not the request.
VOLATILE_PARAMS = CREDENTIAL_PARAMS | {"tool", "WebEnv", "webenv", "query_key"}



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

    # -- the snapshot itself -------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, *, sample: bool, note: str, protocol_sha256: str = "",
               clock: Callable[[], str] = utcnow, name: str | None = None) -> Snapshot:
        """A new snapshot folder (or the existing one). ``name`` (default: the folder's) names the
        screening folder its decisions live in, so a copy elsewhere keeps the same decisions."""
        snap = cls(root, clock)
        if (snap.root / "snapshot.json").exists():
            existing = cls.open(root)
            existing.clock = clock
            return existing
        atomic_write_json(snap.root / "snapshot.json", {
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
        if not (snap.root / "snapshot.json").is_file():
            raise SnapshotError(f"{snap.root} is not a reviewkit snapshot (no snapshot.json)")
        snap.writable = not snap.is_sample
        return snap

    def _check_writable(self) -> None:
        if not self.writable:
            raise SnapshotError(f"snapshot {self.root} is a sample and read-only; record live searches in a "
                                "snapshot of their own (e.g. `--snapshot live`)")

    @property
    def info(self) -> dict:
        try:
            return json.loads((self.root / "snapshot.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SnapshotError(f"{self.root} is not a reviewkit snapshot (no snapshot.json)") from None

    @property
    def is_sample(self) -> bool:
        return bool(self.info.get("sample"))

    # -- exchanges -----------------------------------------------------------
    def _paths(self, ex_id: str) -> tuple[Path, Path]:
        base = self.root / "exchanges" / ex_id
        return base.with_suffix(".json"), base.with_suffix(".body")

    def get(self, utility: str, params: dict[str, Any]) -> Exchange | None:
        ex_id = exchange_id(utility, params)
        meta_path, body_path = self._paths(ex_id)
        if not meta_path.is_file() or not body_path.is_file():
            return None
        return self.load(ex_id)

    def load(self, ex_id: str) -> Exchange:
        meta_path, body_path = self._paths(ex_id)
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            body = body_path.read_bytes()
        except FileNotFoundError:
            raise SnapshotError(f"{self.root}: exchange {ex_id} is listed but its files are missing") from None
        if hashlib.sha256(body).hexdigest() != meta["sha256"]:
            raise SnapshotError(f"{body_path}: content does not match its recorded sha256 (file altered?)")
        return Exchange(ex_id, meta["utility"], meta["method"], meta["params"], meta["time"], meta["status"], body)

    def put(self, utility: str, params: dict[str, Any], body: bytes, *, method: str = "GET",
            status: int = 200) -> Exchange:
        self._check_writable()
        ex_id = exchange_id(utility, params)
        meta_path, body_path = self._paths(ex_id)
        stored = clean_params(params)
        time = self.clock()
        # Body first, metadata last: an exchange counts as recorded only once both exist.
        atomic_write_bytes(body_path, body)
        atomic_write_json(meta_path, {
            "utility": utility, "method": method, "params": stored, "time": time,
            "status": status, "bytes": len(body), "sha256": hashlib.sha256(body).hexdigest(),
        })
        return Exchange(ex_id, utility, method, stored, time, status, body)

    # -- manifests -----------------------------------------------------------
    # One manifest per search: ``searches/<key>.json`` (PubMed), ``registers/<register>/<key>.json``.
    MANIFEST_FOLDERS = ("searches", "registers/ctgov")

    def _manifest_folder(self, folder: str) -> Path:
        if folder not in self.MANIFEST_FOLDERS:
            raise ValueError(f"no manifest folder {folder!r} (known: {', '.join(self.MANIFEST_FOLDERS)})")
        return self.root / folder

    def write_manifest(self, key: str, manifest: dict, folder: str = "searches") -> Path:
        self._check_writable()
        return atomic_write_json(self._manifest_folder(folder) / f"{key}.json", manifest)

    def manifest(self, key: str, folder: str = "searches") -> dict:
        path = self._manifest_folder(folder) / f"{key}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SnapshotError(
                f"snapshot {self.root} has no {'search' if folder == 'searches' else folder} {key!r} "
                f"(known: {', '.join(self.search_keys(folder)) or 'none'})"
            ) from None

    def search_keys(self, folder: str = "searches") -> list[str]:
        found = self._manifest_folder(folder)
        return sorted(p.stem for p in found.glob("*.json")) if found.is_dir() else []

    # -- lookups (records fetched for citation checks, outside every search) --------
    def record_lookup(self, utility: str, params: dict[str, Any]) -> None:
        """List a recorded exchange in ``lookups/manifest.json`` so offline checks find its records."""
        self._check_writable()
        path = self.root / "lookups" / "manifest.json"
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {
            "purpose": "records fetched by live citation checks", "pmids": [], "exchanges": []}
        ex_id = exchange_id(utility, params)
        if ex_id not in manifest["exchanges"]:
            manifest["exchanges"].append(ex_id)
            manifest["pmids"] = sorted(set(manifest["pmids"]) | set(str(params.get("id", "")).split(",")) - {""},
                                       key=int)
            atomic_write_json(path, manifest)
