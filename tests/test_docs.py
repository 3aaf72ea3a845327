"""The docs: every hook, setting, command (and its actions) and check id documented; the site builds strictly."""

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from django.core.management import load_command_class

from cronman_core import hookspecs

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"


def hook_names():
    return sorted(name for name in dir(hookspecs) if name.startswith("cronman_"))


def test_every_hook_has_a_docstring():
    assert hook_names()
    for name in hook_names():
        doc = getattr(hookspecs, name).__doc__ or ""
        assert len(doc.strip()) > 20, name


def test_every_hook_has_a_section_with_signature_and_example():
    text = (DOCS / "plugins.md").read_text()
    sections = dict(re.findall(r"^### (cronman_\w+)\n(.*?)(?=^### |\Z)", text, re.S | re.M))
    missing = [name for name in hook_names() if name not in sections]
    assert missing == [], f"undocumented hooks: {missing}"
    for name, body in sections.items():
        assert name in hook_names(), f"docs describe a hook that does not exist: {name}"
        assert f"`{name}(" in body, f"{name}: no signature line"
        assert "```python" in body, f"{name}: no example"


def test_docs_index_links_exist():
    index = (DOCS / "index.md").read_text()
    for target in re.findall(r"\]\(([\w-]+\.md)\)", index):
        assert (DOCS / target).exists(), target


def test_every_declared_setting_is_in_the_settings_page():
    from cronman_core import conf
    from cronman_core.plugins import get_plugin_manager

    get_plugin_manager()  # the built-in plugins declare theirs
    text = (DOCS / "settings.md").read_text()
    missing = [s.name for s in conf.declared() if f"`{s.name}`" not in text]
    assert missing == [], f"undocumented settings: {missing}"


def _sections(text: str) -> dict[str, str]:
    """``## name`` sections of a page, by name."""
    return dict(re.findall(r"^## (\S+)\n(.*?)(?=^## |\Z)", text, re.S | re.M))


def test_every_command_and_action_is_in_the_commands_page():
    sections = _sections((DOCS / "commands.md").read_text())
    apps = {"cron_worker": "cronman_core", "cron_scheduler": "cronman_core", "cron_plugins": "cronman_core",
            "cron_monitors": "cronman_core", "cron_remote_manager": "cronman_plugins.redis"}
    found = {path.stem for pattern in ("cronman_core", "cronman_plugins/*")
             for path in REPO.glob(f"{pattern}/management/commands/cron_*.py")}
    assert found == set(apps), "a new command: add it here and to docs/commands.md"
    missing = []
    for name, app in apps.items():
        if name not in sections:
            missing.append(name)
            continue
        parser = load_command_class(app, name).create_parser("manage.py", name)
        actions = [choice for action in parser._actions if isinstance(action, argparse._SubParsersAction)
                   for choice in action.choices]
        missing += [f"{name} {action}" for action in actions if not re.search(rf"\b{action}\b", sections[name])]
    assert missing == [], f"undocumented in docs/commands.md: {missing}"


def test_every_check_id_is_in_the_commands_page():
    text = (DOCS / "commands.md").read_text()
    used = {match for path in [*REPO.glob("cronman_core/**/*.py"), *REPO.glob("cronman_plugins/**/*.py")]
            for match in re.findall(r"cronman\.[EW]\d{3}", path.read_text())}
    assert used, "no check ids found"
    missing = sorted(check_id for check_id in used if f"`{check_id}`" not in text)
    assert missing == [], f"check ids not in docs/commands.md's table: {missing}"


def test_the_docs_site_builds_strictly(tmp_path):
    """mkdocs-material with ``--strict``: a broken link or anchor, or a page left out of the nav, fails."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "dbschedule" / "index.html").exists()
