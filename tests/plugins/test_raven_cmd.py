"""``cronman_plugins.raven_cmd``: spawned workers wrapped as ``raven-cmd -c "<quoted command>"``."""

import json
import shlex
import subprocess

import pytest

from cronman_core.errors import UsageError
from cronman_core.plugins import build_plugin_manager
from cronman_core.spawners import WorkerCommand
from tests.testapp.cron_jobs import NiceSleep

INJECTION_SPEC = """Echo:"$(touch {tmp}/INJECTED)",'a"b;`touch {tmp}/INJECTED`',x="it's $HOME\""""


def test_raven_cmd_wraps_quoted_so_no_spec_injects_shell(project, tmp_path):
    raven = tmp_path / "raven"
    # Like raven-cmd: options, then -c "<command>", run by a shell.
    raven.write_text('#!/bin/sh\necho "raven got: $1 $2" >&2\nexec sh -c "$3"\n')
    raven.chmod(0o755)
    project.configure(CRONMAN_RAVEN_CMD=f"{raven} --quiet")
    spec = INJECTION_SPEC.format(tmp=tmp_path)
    script = (
        "import json, sys\n"
        "from cronman_core.spawn import build_worker_command\n"
        f"command = build_worker_command({spec!r})\n"
        "print(json.dumps({'argv': command.argv, 'env': command.env}))\n"
    )
    built = project.shell(script)
    command = json.loads(built.stdout.splitlines()[-1])
    argv = command["argv"]
    assert argv[:3] == [str(raven), "--quiet", "-c"] and len(argv) == 4
    ran = subprocess.run(
        argv, env=command["env"], cwd=project.path, capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    assert "raven got: --quiet -c" in ran.stderr
    (mark,) = project.read_marks()
    assert mark["args"] == [f"$(touch {tmp_path}/INJECTED)", f'a"b;`touch {tmp_path}/INJECTED`']
    assert mark["kwargs"] == {"x": "it's $HOME"}
    assert not (tmp_path / "INJECTED").exists()


def test_malformed_raven_cmd_is_one_line(settings):
    settings.CRONMAN_RAVEN_CMD = "raven-cmd 'unclosed"
    expected = r"^CRONMAN_RAVEN_CMD must be a command line .*, got \"raven-cmd 'unclosed\" \(No closing quotation\)$"
    with pytest.raises(UsageError, match=expected):
        build_plugin_manager()


def test_raven_cmd_is_the_outermost_wrapper(settings):
    settings.CRONMAN_RAVEN_CMD = "/usr/bin/raven"
    settings.CRONMAN_NICE_CMD = "nice"
    pm = build_plugin_manager()
    argv = ["python", "-m", "django", "cron_worker", "run", "NiceSleep"]
    command = WorkerCommand(argv=argv, env={}, job_spec="NiceSleep", job_class=NiceSleep)
    pm.worker_command(command)
    assert command.argv[:2] == ["/usr/bin/raven", "-c"]
    assert shlex.split(command.argv[2])[0] == "nice"
    assert command.argv[2].endswith(" cron_worker run NiceSleep")
