"""A review is a project folder; ``Project`` knows where each of its files is.

A project folder holds ``reviewkit.yml`` (its marker, as ``.git`` marks a
repository) and the review's files. ``Project.find`` locates it, in this order:
an explicit folder (``--project DIR``), the ``REVIEWKIT_PROJECT`` environment
variable, then the current folder and its parents. Every command and every
notebook asks the project for paths; nothing in the library knows where one
review keeps its files.

``reviewkit.yml`` may name other places for each kind of file; every path is
relative to the project folder and must stay inside it::

    reviewkit: 1
    paths:                       # these are the defaults
      protocol: data/protocol.yml
      snapshots: data/snapshots
      screening: data/screening
      extraction: data/extraction
      article: data/article
      notebooks: notebooks
      reports: reports
    snapshots:
      offline: live              # replayed when no --snapshot is given
      live: live                 # recorded into by live searches
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ProjectError
from .io import read_yaml

if TYPE_CHECKING:
    from .protocol import Protocol

MARKER = "reviewkit.yml"
ENV_VAR = "REVIEWKIT_PROJECT"
FORMAT = 1
DEFAULT_PATHS = {
    "protocol": "data/protocol.yml",
    "snapshots": "data/snapshots",
    "screening": "data/screening",
    "extraction": "data/extraction",
    "article": "data/article",
    "notebooks": "notebooks",
    "reports": "reports",
}
DEFAULT_SNAPSHOTS = {"offline": "live", "live": "live"}
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
_MAX_MARKER_BYTES = 64 * 1024


@dataclass(frozen=True)
class Project:
    """A review's folder and the places of its files.

    Parameters
    ----------
    root : Path
        The folder holding ``reviewkit.yml``.
    paths : dict
        Kind of file -> path relative to ``root`` (``DEFAULT_PATHS`` completed by ``reviewkit.yml``).
    snapshots : dict
        ``offline`` / ``live`` -> the default snapshot name of each mode.
    protocol_file : Path, optional
        A protocol file given explicitly (``--protocol``); default ``paths["protocol"]``.
    """

    root: Path
    paths: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PATHS))
    snapshots: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SNAPSHOTS))
    protocol_file: Path | None = None

    # -- finding a project ----------------------------------------------------
    @classmethod
    def find(cls, folder: str | os.PathLike | None = None, *, start: str | os.PathLike | None = None,
             protocol: str | os.PathLike | None = None) -> Project:
        """The project named by ``folder``, else ``$REVIEWKIT_PROJECT``, else the first folder
        holding ``reviewkit.yml`` from ``start`` (default: the current folder) upwards.

        ``protocol`` replaces the project's protocol file (``--protocol``).
        """
        explicit = folder if folder not in (None, "") else os.environ.get(ENV_VAR) or None
        if explicit is not None:
            root = Path(explicit).expanduser().resolve()
            if not (root / MARKER).is_file():
                origin = "--project" if folder not in (None, "") else ENV_VAR
                raise ProjectError(f"{origin}: {root} is not a reviewkit project (no {MARKER}); "
                                   "create one with `reviewkit init DIR`")
        else:
            here = Path(start or Path.cwd()).expanduser().resolve()
            found = next((d for d in (here, *here.parents) if (d / MARKER).is_file()), None)
            if found is None:
                raise ProjectError(f"no reviewkit project here: neither {here} nor a folder above it holds "
                                   f"{MARKER}; run inside a review folder, give --project DIR (or set "
                                   f"{ENV_VAR}), or create one with `reviewkit init DIR`")
            root = found
        return cls.load(root, protocol=protocol)

    @classmethod
    def load(cls, root: str | os.PathLike, *, protocol: str | os.PathLike | None = None) -> Project:
        """The project whose marker file is ``root/reviewkit.yml`` (checked: every path stays inside)."""
        root = Path(root).resolve()
        marker = root / MARKER
        settings = read_yaml(marker, "project file") or {}
        if not isinstance(settings, dict):
            raise ProjectError(f"{marker}: must be a mapping (e.g. `reviewkit: 1`)")
        unknown = sorted(set(settings) - {"reviewkit", "paths", "snapshots"})
        if unknown:
            raise ProjectError(f"{marker}: unknown key(s) {', '.join(map(str, unknown))} "
                               "(allowed: reviewkit, paths, snapshots)")
        if settings.get("reviewkit", FORMAT) != FORMAT:
            raise ProjectError(f"{marker}: field 'reviewkit' must be {FORMAT} (got {settings.get('reviewkit')!r})")
        paths = _section(settings, "paths", DEFAULT_PATHS, marker)
        for kind, rel in paths.items():
            _inside(root, rel, f"{marker}: paths.{kind}")
        snapshots = _section(settings, "snapshots", DEFAULT_SNAPSHOTS, marker)
        for mode, name in snapshots.items():
            if not _is_name(name):
                raise ProjectError(f"{marker}: snapshots.{mode} must be a folder name under "
                                   f"{paths['snapshots']}/ (got {name!r})")
        proto = Path(protocol).expanduser().resolve() if protocol is not None and protocol != "" else None
        return cls(root, paths, snapshots, proto)

    # -- where things are -------------------------------------------------------
    def path(self, kind: str) -> Path:
        """The absolute path of one kind of file (a key of ``DEFAULT_PATHS``)."""
        try:
            return self.root / self.paths[kind]
        except KeyError:
            raise ProjectError(f"unknown kind of project file {kind!r} (known: {', '.join(self.paths)})") from None

    @property
    def protocol_path(self) -> Path:
        return self.protocol_file or self.path("protocol")

    def protocol(self) -> Protocol:
        """The review protocol, read and checked (``reviewkit.protocol.load_protocol``)."""
        from .protocol import load_protocol

        return load_protocol(self.protocol_path)

    def snapshot_dir(self, snapshot: str | os.PathLike | None = None, *, live: bool = False) -> Path:
        """A snapshot folder: a bare name is a folder of the project's snapshots folder, anything
        else a path; None is the project's default for the mode (``snapshots.live`` / ``.offline``)."""
        if snapshot is None or snapshot == "":
            snapshot = self.snapshots["live" if live else "offline"]
        return self._named(snapshot, "snapshots")

    def screening_dir(self, snapshot_dir: Path, screening: str | os.PathLike | None = None) -> Path:
        """The screening folder of a snapshot: the one named, else ``<screening>/<snapshot name>``.

        A snapshot's name is the one in its ``snapshot.json`` (so a live run's copy of the live
        snapshot keeps the live decisions), else its folder name.
        """
        if screening is None or screening == "":
            screening = _snapshot_name(snapshot_dir)
        return self._named(screening, "screening")

    def notebooks(self) -> list[Path]:
        """The report notebooks, ``NN_<part>.ipynb``, in run order."""
        folder = self.path("notebooks")
        found = sorted(folder.glob(NOTEBOOK_GLOB)) if folder.is_dir() else []
        if not found:
            raise ProjectError(f"no notebooks matching {NOTEBOOK_GLOB} in {folder}")
        return found

    def relative(self, path: str | os.PathLike) -> str:
        """``path`` as shown to readers: relative to the project when inside it, else as given."""
        path = Path(path)
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def _named(self, value: str | os.PathLike, kind: str) -> Path:
        text = os.fspath(value)
        if _is_name(text):
            return self.path(kind) / text
        return Path(text).expanduser().resolve()


def _section(settings: dict, name: str, defaults: dict[str, str], marker: Path) -> dict[str, str]:
    given = settings.get(name) or {}
    if not isinstance(given, dict):
        raise ProjectError(f"{marker}: field '{name}' must be a mapping")
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ProjectError(f"{marker}: {name} has unknown key(s) {', '.join(map(str, unknown))} "
                           f"(allowed: {', '.join(defaults)})")
    out = dict(defaults)
    for key, value in given.items():
        if not isinstance(value, str) or not value.strip():
            raise ProjectError(f"{marker}: {name}.{key} must be a non-empty string")
        out[key] = value.strip()
    return out


def _inside(root: Path, rel: str, where: str) -> Path:
    """``root/rel``, refused when ``rel`` is absolute or leads out of ``root`` (also through a symlink)."""
    if Path(rel).is_absolute():
        raise ProjectError(f"{where}: {rel!r} must be relative to the project folder")
    target = (root / rel).resolve()
    if target != root and root not in target.parents:
        raise ProjectError(f"{where}: {rel!r} leads outside the project folder")
    return target


def _is_name(text: str) -> bool:
    """A bare folder name (no separator, not '.' or '..')."""
    return bool(text) and text not in (".", "..") and "/" not in text and os.sep not in text and \
        not (os.altsep and os.altsep in text)


def _snapshot_name(snapshot_dir: Path) -> str:
    import json

    try:
        name = json.loads((snapshot_dir / "snapshot.json").read_text(encoding="utf-8")).get("name")
    except (OSError, ValueError, AttributeError):
        name = None
    return name if isinstance(name, str) and _is_name(name) else snapshot_dir.name
