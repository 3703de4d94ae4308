"""Atomic writes: the target is replaced whole or left as it was."""

from __future__ import annotations

import stat

import pytest

from accelerando.fileio import atomic_path, atomic_write_text


def test_atomic_write_text_creates_parents_and_usual_permissions(tmp_path):
    path = atomic_write_text(tmp_path / "a" / "b.json", "{}\n")
    assert path.read_text() == "{}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["b.json"]  # no temp file left


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
