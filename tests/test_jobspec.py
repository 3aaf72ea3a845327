import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cronman_core.errors import JobParamsError, JobSpecError
from cronman_core.job import BaseCronJob
from cronman_core.jobspec import JobSpec, bind, format_spec, parse


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello", JobSpec("Hello")),
        ("Hello:world", JobSpec("Hello", ("world",))),
        ('Hello:"big world",sleep=5', JobSpec("Hello", ("big world",), (("sleep", "5"),))),
        ("Hello:'a=b',k='x y'", JobSpec("Hello", ("a=b",), (("k", "x y"),))),
        ("Hello:k=a=b", JobSpec("Hello", (), (("k", "a=b"),))),
        ('Hello:""', JobSpec("Hello", ("",))),
        ("Hello:a:b", JobSpec("Hello", ("a:b",))),
    ],
)
def test_parse(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "reason", "start", "end"),
    [
        ("", "empty job name", 0, 0),
        (":a", "empty job name", 0, 0),
        ("Hello:", "empty value", 6, 6),
        ("Hello:a,,b", "empty value", 8, 8),
        ('Hello:"big world', "unbalanced quotes", 6, 16),
        ("Hello:it's", "unbalanced quotes", 8, 9),
        ('Hello:"a,b"', "unbalanced quotes", 6, 8),
        ("Hello:k=1,x", "positional value after a named one", 10, 11),
        ("Hello:k=1,k=2", "duplicated key 'k'", 10, 11),
        ("Hello:=1", "empty key", 6, 6),
        ("Hello:k=", "empty value", 8, 8),
        ("Hel lo", "invalid character ' ' in job name", 3, 4),
        ("Hello:1k=2", "invalid key '1k'", 6, 8),
        ("Hello:a\x00b", "control character '\\x00'", 7, 8),
        ("Hel\nlo:x", "control character '\\n'", 3, 4),
        ("Hello:'a\tb'", "control character '\\t'", 8, 9),
        ("Hello:k=\x85", "control character '\\x85'", 8, 9),
    ],
)
def test_parse_errors_name_the_range(text, reason, start, end):
    with pytest.raises(JobSpecError) as info:
        parse(text)
    err = info.value
    assert (err.reason, err.start, err.end) == (reason, start, end)
    assert str(err) == f"invalid job spec {text!r}: {reason} at characters {start}-{end}"
    assert "\n" not in str(err)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab:=,\"' \tk1_é")) | st.characters(), max_size=40))
def test_any_string_parses_or_raises_the_documented_error(text):
    try:
        spec = parse(text)
    except JobSpecError as err:
        assert 0 <= err.start <= err.end <= len(text)
        assert f"at characters {err.start}-{err.end}" in str(err)
    else:
        assert isinstance(spec, JobSpec)
        assert all(unicodedata.category(c) != "Cc" for c in text)


names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,15}", fullmatch=True)
values = st.text(
    alphabet=st.characters(blacklist_characters=",", blacklist_categories=("Cs", "Cc")), max_size=12
).filter(lambda v: not ('"' in v and "'" in v))
keys = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)


@st.composite
def specs(draw):
    args = tuple(draw(st.lists(values, max_size=4)))
    kwargs = draw(st.dictionaries(keys, values, max_size=4))
    return JobSpec(draw(names), args, tuple(kwargs.items()))


@settings(max_examples=500, deadline=None)
@given(specs())
def test_format_round_trips(spec):
    assert parse(format_spec(spec)) == spec


class Job(BaseCronJob):
    def run(self, what, sleep=None):
        pass


def test_bind_accepts_fitting_params():
    bound = bind(Job, parse('Job:"big world",sleep=1'))
    assert bound.arguments == {"self": None, "what": "big world", "sleep": "1"}


@pytest.mark.parametrize("text", ["Job", "Job:a,b,c", "Job:a,nope=1", "Job:a,what=b"])
def test_bind_rejects_misfits_with_one_line(text):
    with pytest.raises(JobParamsError) as info:
        bind(Job, parse(text))
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 2


def test_the_grammar_needs_no_django():
    """``cronman_core.jobspec`` is pure: parse, format and bind without settings or Django."""
    code = (
        "import sys\n"
        "from cronman_core.jobspec import bind, format_spec, parse\n"
        "class Job:\n"
        "    def run(self, what, sleep=None): pass\n"
        "spec = parse('Job:\"big world\",sleep=1')\n"
        "bind(Job, spec)\n"
        "assert format_spec(spec) == 'Job:\"big world\",sleep=1'\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'cronman_plugins')))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
