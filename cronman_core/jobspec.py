"""The job spec grammar: ``Name`` or ``Name:params``.

Params are comma-separated: positional values first, then ``key=value``.
A value may be quoted with ``"`` or ``'`` to hold spaces or ``=``; a comma
always separates (it can never be part of a value). No part may hold a
control character (NUL, newline, tab...): it could not reach the worker's
argv intact nor be logged on one line. Every error is a
:class:`~cronman_core.errors.JobSpecError` naming the character range.

Pure: no Django, no plugins. Looking a spec's job up and binding it with
the active plugins' reserved params is the plugin manager's
(:meth:`~cronman_core.plugins.CronmanPluginManager.resolve`).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Protocol

from cronman_core.errors import JobParamsError, JobSpecError

_QUOTES = "\"'"
_NAME_FORBIDDEN = set(",=:\"' ")
#: Unicode category Cc: C0, DEL and C1.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class JobSpec:
    """A parsed job spec: job name, positional values, named values (in order)."""

    name: str
    args: tuple[str, ...] = ()
    kwargs: tuple[tuple[str, str], ...] = field(default=())

    @property
    def kwargs_dict(self) -> dict[str, str]:
        return dict(self.kwargs)

    def run_kwargs(self, reserved: Collection[str] = ()) -> dict[str, str]:
        """The named values ``run()`` gets: all but the ``reserved`` ones plugins consume."""
        return {key: value for key, value in self.kwargs if key not in reserved}

    @property
    def params(self) -> str:
        """The canonical params part (empty string when there are none)."""
        parts = [_format_value(v, positional=True) for v in self.args]
        parts += [f"{k}={_format_value(v, positional=False)}" for k, v in self.kwargs]
        return ",".join(parts)

    def __str__(self) -> str:
        return format_spec(self)


def _error(spec: str, message: str, start: int, end: int) -> JobSpecError:
    return JobSpecError(message, spec, start, end)


def _parse_value(spec: str, text: str, start: int) -> str:
    end = start + len(text)
    if not text:
        raise _error(spec, "empty value", start, end)
    quote = text[0]
    if quote in _QUOTES:
        if len(text) < 2 or text[-1] != quote:
            raise _error(spec, "unbalanced quotes", start, end)
        inner = text[1:-1]
        if quote in inner:
            raise _error(spec, "unbalanced quotes", start, end)
        return inner
    for offset, char in enumerate(text):
        if char in _QUOTES:
            raise _error(spec, "unbalanced quotes", start + offset, start + offset + 1)
    return text


def parse(spec: str) -> JobSpec:
    """Parse a job spec string; raise :class:`JobSpecError` naming the position."""
    if not isinstance(spec, str):
        raise TypeError("job spec must be a string")
    control = _CONTROL.search(spec)
    if control:
        index = control.start()
        raise _error(spec, f"control character {control.group()!r}", index, index + 1)
    name, sep, params = spec.partition(":")
    if not name:
        raise _error(spec, "empty job name", 0, 0)
    for index, char in enumerate(name):
        if char in _NAME_FORBIDDEN or not char.isprintable():
            raise _error(spec, f"invalid character {char!r} in job name", index, index + 1)
    args: list[str] = []
    kwargs: dict[str, str] = {}
    if sep:
        position = len(name) + 1
        for piece in params.split(","):
            start, end = position, position + len(piece)
            position = end + 1
            key, eq, rest = piece.partition("=")
            is_named = bool(eq) and (not key or key[0] not in _QUOTES)
            if not is_named:
                if kwargs:
                    raise _error(spec, "positional value after a named one", start, end)
                args.append(_parse_value(spec, piece, start))
                continue
            if not key:
                raise _error(spec, "empty key", start, start)
            if not key.isidentifier():
                raise _error(spec, f"invalid key {key!r}", start, start + len(key))
            if key in kwargs:
                raise _error(spec, f"duplicated key {key!r}", start, start + len(key))
            kwargs[key] = _parse_value(spec, rest, start + len(key) + 1)
    return JobSpec(name, tuple(args), tuple(kwargs.items()))


def _format_value(value: str, positional: bool) -> str:
    if "," in value or _CONTROL.search(value):
        raise ValueError(f"a job spec value cannot hold a comma or a control character: {value!r}")
    needs_quotes = (
        value == ""
        or any(c in _QUOTES or c.isspace() or not c.isprintable() for c in value)
        or (positional and "=" in value)
    )
    if not needs_quotes:
        return value
    for quote in _QUOTES:
        if quote not in value:
            return f"{quote}{value}{quote}"
    raise ValueError(f"a job spec value cannot hold both kinds of quotes: {value!r}")


def format_spec(spec: JobSpec) -> str:
    """Format a :class:`JobSpec` so that ``parse(format_spec(s)) == s``."""
    params = spec.params
    if not spec.args and not spec.kwargs:
        return spec.name
    return f"{spec.name}:{params}"


class Runnable(Protocol):
    """What :func:`bind` needs of a job class: a ``run(self, ...)`` method."""

    def run(self, *args: Any, **kwargs: Any) -> Any: ...


def bind(job_class: type[Runnable], spec: JobSpec, reserved: Collection[str] = ()) -> inspect.BoundArguments:
    """Bind the spec's params to ``job_class.run`` so a misfit fails before anything runs.

    ``reserved`` names params that plugins consume (see
    ``cronman_reserved_params``); they are left out.
    """
    signature = inspect.signature(job_class.run)
    try:
        return signature.bind(None, *spec.args, **spec.run_kwargs(reserved))
    except TypeError as exc:
        raise JobParamsError(f"params of {format_spec(spec)!r} do not fit {spec.name}.run(): {exc}") from exc


def canonical_params(bound: inspect.BoundArguments) -> str:
    """The params of a bound ``run()`` call, one way for one call.

    ``Foo:5,tag=x``, ``Foo:seconds=5,tag=x`` and ``Foo:tag=x,seconds=5`` bind
    to the same call and give ``seconds=5,tag=x``: named parameters in the
    signature's order, then ``*args`` values first, ``**kwargs`` sorted.
    """
    parameters = list(bound.signature.parameters.values())[1:]  # without ``self``
    args: tuple[str, ...] = ()
    kwargs: list[tuple[str, str]] = []
    extra: list[tuple[str, str]] = []
    for parameter in parameters:
        if parameter.name not in bound.arguments:
            continue
        value = bound.arguments[parameter.name]
        if parameter.kind is parameter.VAR_POSITIONAL:
            args = tuple(value)
        elif parameter.kind is parameter.VAR_KEYWORD:
            extra = sorted(value.items())
        else:
            kwargs.append((parameter.name, value))
    return JobSpec("", args, tuple(kwargs + extra)).params
