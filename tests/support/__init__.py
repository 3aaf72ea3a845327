"""Helpers shared by the tests: servers, projects, import walking."""
