"""A plugin object that contributes fixed schedule entries."""

from __future__ import annotations

from cronman_core import hookimpl


class ScheduleSource:
    def __init__(self, items: list) -> None:
        self.items = items

    @hookimpl
    def cronman_schedule_entries(self) -> list:
        return self.items
