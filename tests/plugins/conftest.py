from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cronman_core.plugins import build_plugin_manager
from tests.support.httpserver import Recorder


@pytest.fixture
def http_server() -> Iterator[Callable[..., Recorder]]:
    """Start local recording HTTP servers (``http_server(mode)``); stopped after the test."""
    servers: list[Recorder] = []

    def start(mode: str = "ok") -> Recorder:
        servers.append(Recorder(mode))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def registered_times(settings: Any, module_path: str, **switch: Any) -> int:
    """How often ``module_path`` is registered when switched on by ``switch`` and also
    listed in ``CRONMAN_PLUGINS``."""
    import importlib

    for name, value in switch.items():
        setattr(settings, name, value)
    settings.CRONMAN_PLUGINS = [module_path]
    pm = build_plugin_manager()
    module = importlib.import_module(module_path)
    return sum(plugin is module for plugin in pm.get_plugins())
