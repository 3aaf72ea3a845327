"""Every hook is documented where it is declared and in docs/plugins.md."""

import re
from pathlib import Path

from cronman_core import hookspecs

DOCS = Path(__file__).resolve().parent.parent / "docs"


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
