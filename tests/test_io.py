"""Atomic writes: all or nothing, usual permissions, no temp files left behind; JSON-lines read past a torn line."""

from __future__ import annotations

import os

import pytest

from cnnlab._io import atomic_path, atomic_write, read_jsonl


def test_atomic_write_replaces_whole_file_with_umask_permissions(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    atomic_write(target, "new ✓")
    assert target.read_text(encoding="utf-8") == "new ✓"
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_failure_keeps_old_content_and_removes_temp(tmp_path):
    target = tmp_path / "weights.safetensors"
    target.write_bytes(b"good")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.safetensors"]


def test_read_jsonl_keeps_objects_in_order_and_skips_a_torn_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"kind": "step", "step": 1}\n[1, 2]\n\n{"kind": "epoch", "epoch": 1}\n{"kind": "ep')
    assert read_jsonl(path) == [{"kind": "step", "step": 1}, {"kind": "epoch", "epoch": 1}]
