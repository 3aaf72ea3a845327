"""Test helpers for cronman and for plugin authors.

:class:`CronmanProject` is a throwaway project: a settings module in a temp
dir layered over your base settings, a private data dir, and ``manage.py``
commands run as real subprocesses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class CronmanProject:
    """A settings module plus data dir in ``path``; runs commands as subprocesses."""

    _counter = 0

    def __init__(
        self,
        path: Path,
        base_settings: str,
        pythonpath: Sequence[str | os.PathLike[str]] = (),
        **settings: Any,
    ) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.base_settings = base_settings
        self.pythonpath = [str(self.path), *map(str, pythonpath)]
        self.data_dir = self.path / "data"
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self.marks = self.path / "marks.jsonl"
        self.extra_env: dict[str, str] = {}
        self.configure(**settings)

    def configure(self, **settings: Any) -> None:
        """Write a new settings module: the base settings, the data dir and ``settings``."""
        CronmanProject._counter += 1
        self.settings_module = f"cronman_test_settings_{os.getpid()}_{CronmanProject._counter}"
        lines = [f"from {self.base_settings} import *  # noqa", f"CRONMAN_DATA_DIR = {str(self.data_dir)!r}"]
        lines += [f"{name} = {value!r}" for name, value in settings.items()]
        (self.path / f"{self.settings_module}.py").write_text("\n".join(lines) + "\n")

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE=self.settings_module,
            PYTHONPATH=os.pathsep.join(self.pythonpath),
            CRONMAN_TEST_MARKS=str(self.marks),
            PYTHONUNBUFFERED="1",
        )
        env.pop("CRON_PROCESS_RESUMED", None)
        env.update(self.extra_env)
        env.update(extra)
        return env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "django", *args]

    def run(
        self, *args: str, timeout: float = 60, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``django-admin <args>`` to completion; stdout/stderr as text."""
        return subprocess.run(
            self.argv(*args),
            cwd=self.path,
            env=self.env(**(env or {})),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def popen(self, *args: str, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.Popen[str]:
        """Start ``django-admin <args>`` without waiting (for races and signals)."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen(
            self.argv(*args), cwd=self.path, env=self.env(**(env or {})), text=True, **kwargs
        )

    def read_marks(self) -> list[dict[str, Any]]:
        import json

        if not self.marks.exists():
            return []
        return [json.loads(line) for line in self.marks.read_text().splitlines() if line.strip()]
