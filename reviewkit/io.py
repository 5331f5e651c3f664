"""Files written whole, folders no path leaves, and locks for files people edit.

Atomic writes: data goes to a temporary file in the destination folder and is
then moved into place with ``os.replace``, which is atomic on POSIX and
Windows. A temporary file is named after the file, the writing process and a
random part (``.name.<pid>-<random>.tmp``), so one left by a killed process is
recognised and removed by :func:`remove_stale_temporaries` on the next run. A
write that fails (a full disk, a folder that is a file) is a ``ReviewkitError``
naming the file, and leaves the old file as it was.

Folders that hold data the tool did not write itself (snapshots, screening
folders) are read through :func:`contained`, which refuses symbolic links and
names that leave the folder, and :func:`read_bytes`, which never follows a
link.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from .errors import ReviewkitError, UnsafePathError

#: A temporary file older than this is abandoned even if its process id is in use again.
STALE_TEMPORARY_SECONDS = 3600
_TEMPORARY = re.compile(r"^\..+\.(\d+)-[A-Za-z0-9_]+\.tmp$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` whole or not at all; errors name the file."""
    return atomic_write_stream(path, lambda fh: fh.write(data))


def atomic_write_stream(path: str | os.PathLike, write: Callable[[BinaryIO], object], *,
                        private: bool = False) -> Path:
    """As :func:`atomic_write_bytes`, the contents written by ``write(file)`` as they are made (a large
    pickle need not be held whole in memory). ``private``: the file is readable by this user only
    (0600) from its creation on; otherwise it gets the mode an ordinary write would."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ReviewkitError(f"{path}: cannot write ({_reason(exc)})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if not private:
            # mkstemp makes the file private (0600); give it the mode an ordinary write would,
            # so colleagues and web servers can read reports, or keep the mode of the file it replaces.
            mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ReviewkitError(f"{path}: cannot write ({_reason(exc)}); the previous version is unchanged") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _reason(exc: OSError) -> str:
    """What went wrong, without the file name (the message names it once)."""
    if exc.strerror:
        return exc.strerror
    return exc.args[0] if exc.args and isinstance(exc.args[0], str) else type(exc).__name__


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def remove_stale_temporaries(folder: str | os.PathLike, now: float | None = None) -> list[Path]:
    """Remove the temporary files that killed writers left in ``folder``; returns those removed.

    A temporary file is stale when the process that made it no longer runs, or when it is
    older than ``STALE_TEMPORARY_SECONDS`` (its process id may have been given to another
    process since). A live writer's file is left alone.
    """
    folder = Path(folder)
    if not folder.is_dir() or folder.is_symlink():
        return []
    now = time.time() if now is None else now
    removed = []
    for path in folder.iterdir():
        match = _TEMPORARY.match(path.name)
        if not match or not path.is_file() or path.is_symlink():
            continue
        try:
            old = now - path.stat().st_mtime > STALE_TEMPORARY_SECONDS
            if old or not _running(int(match.group(1))):
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # its writer finished meanwhile
            continue
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process, or not a process id we can ask about: leave the file
    return True


# -- folders no path leaves -------------------------------------------------------

_NAME_PROBLEMS = re.compile(r"[/\\\x00]")


def contained(root: str | os.PathLike, *names: str, what: str = "folder") -> Path:
    """``root/names...``, refused (``UnsafePathError``) when a name is empty, ``.``/``..``, holds a
    separator, or when ``root`` or anything below it on the way is a symbolic link.

    Each name is one path component, so the result cannot leave ``root`` except through a link,
    and links are refused: the check is made on every component, whether or not the path exists yet.
    """
    path = Path(root)
    if path.is_symlink():
        raise UnsafePathError(f"{path}: the {what} is a symbolic link; refused (reviewkit never follows links "
                              "here): name the folder it points to instead")
    for name in names:
        if not name or name in (".", "..") or _NAME_PROBLEMS.search(name):
            raise UnsafePathError(f"{path}: {name!r} is not a file name inside the {what}; refused")
        path = path / name
        if path.is_symlink():
            raise UnsafePathError(f"{path}: a symbolic link inside the {what}; refused "
                                  "(reviewkit never follows links here)")
    top = Path(root).resolve()
    if names and top not in path.resolve().parents:  # by construction it cannot be; checked all the same
        raise UnsafePathError(f"{path}: leads outside the {what}; refused")
    return path


def read_bytes(path: str | os.PathLike, limit: int | None = None) -> bytes:
    """A file's bytes without following a symbolic link (``O_NOFOLLOW``): a link is an ``UnsafePathError``.

    ``FileNotFoundError`` passes through for the caller to name what is missing; with ``limit``,
    a larger file is refused.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        if path.is_symlink():
            raise UnsafePathError(f"{path}: a symbolic link; refused (reviewkit never follows links here)") from None
        raise ReviewkitError(f"{path}: cannot read ({_reason(exc)})") from None
    with os.fdopen(fd, "rb") as fh:
        data = fh.read() if limit is None else fh.read(limit + 1)
    if limit is not None and len(data) > limit:
        raise ReviewkitError(f"{path}: larger than {limit} bytes; refused")
    return data


# -- locks --------------------------------------------------------------------------

@contextmanager
def locked(path: str | os.PathLike, timeout: float = 60.0) -> Iterator[Path]:
    """Hold an exclusive lock on ``path`` (created if missing) for the block.

    reviewkit processes that update the same files take turns this way; an editor
    or a spreadsheet program does not take the lock, which is why writers also
    compare the files with what they read (``reviewkit.screening.write_sheet``).
    Waits at most ``timeout`` seconds, then raises ``ReviewkitError``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666 & ~_umask())
    except OSError as exc:
        raise ReviewkitError(f"{path}: cannot open the lock file ({_reason(exc)})") from None
    try:
        deadline = time.monotonic() + timeout
        while not _try_lock(fd):
            if time.monotonic() > deadline:
                raise ReviewkitError(f"{path}: another reviewkit process has held this lock for over "
                                     f"{timeout:.0f} s; wait for it to finish and run again")
            time.sleep(0.05)
        yield path
    finally:
        os.close(fd)  # closing releases the lock


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":  # pragma: no cover (CI runs on Linux)
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def read_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """Yield one dict per non-blank line; a bad line names the file and line number."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ReviewkitError(f"{path}, line {lineno}: not valid JSON ({exc.msg})") from None


MAX_YAML_BYTES = 1024 * 1024


def read_yaml(path: str | os.PathLike, what: str, max_bytes: int = MAX_YAML_BYTES) -> Any:
    """A small YAML file a person wrote (protocol, project file, claims), read with bounds.

    Plain data only (``yaml.safe_load``: no tags that build objects); aliases are
    refused (a handful of them can expand to gigabytes) and so are files over
    ``max_bytes``, invalid UTF-8 and nesting deeper than Python can follow. Every
    problem is a ``ReviewkitError`` naming the file and, where YAML knows it, the line.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise ReviewkitError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise ReviewkitError(f"{path}: cannot read the {what} ({exc.strerror or type(exc).__name__})") from None
    if len(data) > max_bytes:
        raise ReviewkitError(f"{path}: the {what} is larger than {max_bytes // 1024} KiB; is it the right file?")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReviewkitError(f"{path}: the {what} is not UTF-8 text (byte {exc.start})") from None
    try:
        return yaml.load(text, Loader=_PlainLoader)  # noqa: S506 (a SafeLoader without aliases)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f", line {mark.line + 1}" if mark else ""
        raise ReviewkitError(f"{path}{where}: not valid YAML ({exc.problem or exc.context})") from None
    except yaml.YAMLError as exc:
        raise ReviewkitError(f"{path}: not valid YAML ({type(exc).__name__})") from None
    except RecursionError:
        raise ReviewkitError(f"{path}: the {what} is nested too deeply") from None


class _PlainLoader(yaml.SafeLoader):
    """SafeLoader without aliases or repeated keys."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in this file",
                                              event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        # YAML lets a later key silently replace an earlier one; a person who wrote a key twice meant both.
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice in one mapping",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)
