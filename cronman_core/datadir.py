"""The private data dir: locks, run records, the scheduler watermark, run logs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cronman_core import conf
from cronman_core.errors import DataDirError, DataDirNotWritable


def default_data_dir() -> Path:
    """``$XDG_STATE_HOME/cronman/<settings module>`` (``~/.local/state`` by default)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    project = os.environ.get("DJANGO_SETTINGS_MODULE") or "default"
    return Path(base) / "cronman" / project


def check_data_dir(path: Path) -> None:
    """Refuse a data dir that is a symlink, not a directory, not ours, or writable by others.

    A symlink is refused even to a good directory: whoever can replace the
    link (its parent may be shared, like /tmp) would choose where workers
    write their records and where ``kill`` reads PIDs from.
    """
    try:
        if os.path.islink(path):
            raise DataDirError(f"data dir {path} is a symlink (to {os.readlink(path)}): "
                               "set CRONMAN_DATA_DIR to the directory itself")
        info = os.stat(path)
    except OSError as exc:
        raise DataDirError(f"data dir {path} is unusable: {exc.strerror}") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise DataDirError(f"data dir {path} is not a directory")
    if info.st_uid != os.geteuid():
        raise DataDirError(
            f"data dir {path} is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise DataDirError(
            f"data dir {path} is writable by group or others (mode {stat.S_IMODE(info.st_mode):o}); "
            "run: chmod 700 " + str(path)
        )
    if not os.access(path, os.W_OK | os.X_OK):
        raise DataDirNotWritable(f"data dir {path} is not writable")


def get_data_dir(create: bool = True) -> Path:
    """The configured data dir (``CRONMAN_DATA_DIR``), created 0700 and checked."""
    configured = conf.get("CRONMAN_DATA_DIR")
    path = Path(configured).expanduser() if configured else default_data_dir()
    if create and not path.exists():
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise DataDirError(f"cannot create data dir {path}: {exc.strerror}") from exc
    check_data_dir(path)
    return path


def private_subdir(data_dir: Path, name: str) -> Path:
    """``data_dir/name``, created 0700 and held to the data dir's rules (no symlink)."""
    path = data_dir / name
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise DataDirError(f"cannot create {path}: {exc.strerror}") from exc
    if os.path.islink(path):
        raise DataDirError(f"{path} is a symlink; the data dir must hold real directories")
    check_data_dir(path)
    return path


def check_subdirs(data_dir: Path) -> None:
    """Hold every directory inside the data dir to its rules (``manage.py check``).

    Commands check each subdirectory when they use it; this finds a bad one
    before any command does.
    """
    with os.scandir(data_dir) as entries:
        for entry in entries:
            if entry.is_symlink():
                raise DataDirError(f"{entry.path} is a symlink; the data dir must hold real directories")
            if entry.is_dir(follow_symlinks=False):
                check_data_dir(Path(entry.path))
