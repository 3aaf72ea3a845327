"""``cronman_core.files``: safe names, whole and durable writes."""

from __future__ import annotations

import os
import stat

import pytest

from cronman_core.files import read_bytes, safe_name, write_atomic


def test_safe_names_are_safe_readable_and_distinct():
    names = {safe_name(key) for key in ("Job:a/b", "Job:a_b", "../../etc", "Jöb:x y", "x" * 500)}
    assert len(names) == 5
    for name in names:
        assert "/" not in name and name not in (".", "..") and len(name) <= 77
    assert safe_name("Job:a/b").startswith("Job_a_b-")


def test_write_atomic_replaces_whole_and_private(tmp_path):
    path = tmp_path / "state.json"
    write_atomic(path, b"old")
    write_atomic(path, iter(["new ", "content"]))
    assert read_bytes(path) == b"new content"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(tmp_path) == ["state.json"]


def test_a_failed_write_keeps_the_old_file_and_no_debris(tmp_path):
    path = tmp_path / "state.json"
    write_atomic(path, b"old")

    def chunks():
        yield "half"
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError):
        write_atomic(path, chunks())
    assert read_bytes(path) == b"old"
    assert os.listdir(tmp_path) == ["state.json"]


def test_read_bytes_refuses_a_symlink(tmp_path):
    (tmp_path / "target").write_bytes(b"secret")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    with pytest.raises(OSError):
        read_bytes(tmp_path / "link")
