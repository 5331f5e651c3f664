"""Atomic file writes: a crash never leaves a half-written output behind.

Data goes to a temporary file in the destination folder and is then moved into
place with ``os.replace``, which is atomic on POSIX and Windows.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp makes the file private (0600); give it the mode an ordinary write would,
        # so colleagues and web servers can read reports, or keep the mode of the file it replaces.
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def read_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """Yield one dict per non-blank line; a bad line names the file and line number."""
    from .errors import ReviewkitError

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
    from .errors import ReviewkitError

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
