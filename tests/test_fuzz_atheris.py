"""Coverage-guided fuzzing (``tests/fuzz/atheris_fuzz.py``) for a few seconds: no parser crashes.

The long run is the same script with a longer ``-max_total_time`` (docs/reliability.md).
The seeds include every input that once crashed a parser (``*-crash-*``).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, need

FUZZ = REPO / "tests" / "fuzz"
SECONDS = 15


def test_no_parser_crashes_under_coverage_guided_fuzzing(tmp_path: Path) -> None:
    need(importlib.util.find_spec("atheris") is not None, "atheris is not installed (a dev extra on Linux)")
    corpus = tmp_path / "corpus"
    shutil.copytree(FUZZ / "seeds", corpus)
    result = subprocess.run(
        [sys.executable, str(FUZZ / "atheris_fuzz.py"), f"-max_total_time={SECONDS}", f"-artifact_prefix={tmp_path}/",
         str(corpus)],
        capture_output=True, text=True, timeout=SECONDS + 120,
    )
    report = result.stderr[-4000:]
    assert result.returncode == 0, report
    assert "Done" in report and " runs in " in report, report
    assert not list(tmp_path.glob("crash-*")), report
