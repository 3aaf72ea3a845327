"""``scripts/example.sh`` in short mode, from a clean copy of the repository, as a new user runs it.

The copy holds the tracked files only (no database, no data dir, no
``.venv``); it shares this checkout's virtualenv (``VENV``) rather than
installing one of its own, so the test needs no network.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CAPTIONS = [
    "# 1. Create the tables",
    "# 2. Django's system checks",
    "# 3. The active plugins",
    "# 4. The registered jobs",
    "# 5. The next two fire times",
    "# 6. Run a job directly in this process",
    "# 7. A job that fails",
    "# 8. A lock skip, on purpose",
    "# 9. A catch-up",
    "# 10. A requested run",
    "# 11. The workers running now",
    "# 12. (the scheduler daemon is skipped: EXAMPLE_SECONDS=0)",
    "# 13. The run history",
    "# 14. The last lines of the newest workers' run logs",
    "# Done.",
]


def clean_copy(target: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def sections(output: str) -> dict[str, str]:
    """Each step's caption (its number, or "Done") and what the step printed."""
    parts = re.split(r"^# (\d+|Done)\.", output, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_example_script_short_mode(tmp_path: Path) -> None:
    copy = clean_copy(tmp_path / "cronman")
    # a user's shell: none of the settings pytest-django and the test suite put in the environment
    env = {name: value for name, value in os.environ.items()
           if name not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH") and not name.startswith("CRONMAN_")}
    env.update(VENV=str(Path(sys.prefix)), EXAMPLE_SECONDS="0")
    # The copy's setup-env.sh must find the shared venv up to date: were its stamp stale, it would reinstall
    # cronman into it from the temporary copy, and every later test would import that copy.
    subprocess.run(["bash", "scripts/setup-env.sh"], cwd=REPO, env=env, check=True, capture_output=True)
    result = subprocess.run(["bash", "scripts/example.sh"], cwd=copy, env=env, capture_output=True, text=True,
                            timeout=300)
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    assert result.stderr == ""  # every step's output is on stdout, and nothing else speaks
    positions = [output.find(caption) for caption in CAPTIONS]
    assert -1 not in positions, [c for c, p in zip(CAPTIONS, positions, strict=True) if p == -1]
    assert positions == sorted(positions)
    assert "\033[" not in output  # no colour codes when stdout is not a terminal
    step = sections(output)

    # no warnings, no build noise: the only warning is the lock skip step 8 shows on purpose
    warnings = [line for line in output.splitlines() if re.search(r"warn|deprecat", line, re.I)]
    assert warnings == [line for line in step["8"].splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "Export: lock 'Export' is held by another worker, skipping" in warnings[0]
    assert output.count("skipping") == 1  # nothing else skipped by accident
    # the failure shows its traceback, once, in its own step
    assert output.count("Traceback (most recent call last):") == 1 and "Traceback" in step["7"]
    assert "(exit code 1)" in step["7"]
    # the catch-up: one run for several missed fires, saying so
    assert re.search(r"started HelloWorld:world for its .* fire, catching up \d earlier fire\(s\)", step["9"])
    # the requested run is started by the tick and listed while it runs
    assert 'started requested run HelloWorld:"admin visitor",sleep=5' in step["10"]
    assert re.search(r"^ALIVE\t\d+\t.*\tHelloWorld:\"admin visitor\",sleep=5$", step["11"], re.M)
    # the history has every run: the failure failed, the rest succeeded
    history = step["13"]
    assert re.search(r"failed +Flaky +RuntimeError: the demo job failed on purpose", history)
    for spec in ('HelloWorld:"big world"', "Export:sleep=4", "HelloWorld:world", 'HelloWorld:"admin visitor"'):
        assert re.search(rf"succeeded +{re.escape(spec)}", history), spec
