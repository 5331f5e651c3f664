import os
import stat

import pytest

from reviewkit.errors import ReviewkitError
from reviewkit.io import atomic_write_bytes, atomic_write_json, read_jsonl


def test_atomic_write_gives_a_readable_file_and_leaves_no_temp(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_bytes(tmp_path / "a" / "report.html", b"<html/>")
    finally:
        os.umask(old)
    assert path.read_bytes() == b"<html/>"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's private 0600
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]


def test_rewrite_keeps_the_existing_mode(tmp_path):
    path = tmp_path / "decisions.csv"
    path.write_text("old")
    path.chmod(0o640)
    atomic_write_bytes(path, b"new")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and path.read_text() == "new"


def test_a_failed_write_leaves_the_old_file_intact(tmp_path):
    path = tmp_path / "x.json"
    atomic_write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"a": object()})
    assert path.read_text().strip() == '{\n  "a": 1\n}'
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_bad_jsonl_line_names_file_and_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\n\n{oops}\n')
    with pytest.raises(ReviewkitError, match=r"r\.jsonl, line 3: not valid JSON"):
        list(read_jsonl(path))
