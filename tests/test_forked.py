"""The test runner's forked commands see what a fresh interpreter would (``forked.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import forked

PROBE = """
import json, os, sys
print(json.dumps({
    "argv": sys.argv, "cwd": os.getcwd(), "path": sys.path, "name": __name__,
    "setting": os.environ.get("PROBE_SETTING"), "stdout": [sys.stdout.line_buffering, sys.stdout.write_through],
    "litnets_or_hydra": [m for m in ("litnets", "hydra", "omegaconf") if m in sys.modules],
}))
print("to stderr", file=sys.stderr)
sys.exit(int(os.environ.get("PROBE_EXIT", "0")))
"""


@pytest.fixture
def probe(tmp_path: Path) -> dict:
    """The probe as a script, as a module on ``PYTHONPATH``, and the environment to run it."""
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "probe_module.py").write_text(PROBE)
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    env = {**os.environ, "PROBE_SETTING": "x", "PROBE_EXIT": "3", "PYTHONPATH": str(extra)}
    return {"script": script, "env": env, "cwd": tmp_path}


@pytest.mark.parametrize("unbuffered", [False, True])
@pytest.mark.parametrize("form", ["script", "module", "code"])
def test_a_forked_command_sees_what_a_fresh_interpreter_sees(probe, form, unbuffered) -> None:
    command = {
        "script": [sys.executable, str(probe["script"]), "a", "b=1"],
        "module": [sys.executable, "-m", "probe_module", "a", "b=1"],
        "code": [sys.executable, "-c", PROBE, "a", "b=1"],
    }[form]
    env = {k: v for k, v in probe["env"].items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    fresh = subprocess.run(
        command, capture_output=True, text=True, cwd=probe["cwd"], env=env, timeout=60
    )
    child = forked.run(command, cwd=probe["cwd"], env=env, timeout=60)
    assert (
        (child.returncode, child.stderr) == (fresh.returncode, fresh.stderr) == (3, "to stderr\n")
    )
    assert json.loads(child.stdout) == json.loads(fresh.stdout)
    assert json.loads(child.stdout)["litnets_or_hydra"] == []  # imported fresh by each run


def test_a_forked_command_starts_with_torch_and_lightning_imported(tmp_path, monkeypatch) -> None:
    code = "import sys; print('torch' in sys.modules, 'lightning' in sys.modules)"
    command = [sys.executable, "-c", code]
    monkeypatch.delenv("LITNETS_TEST_FRESH", raising=False)
    result = forked.run(command, cwd=tmp_path, env=dict(os.environ), timeout=60)
    assert result.stdout == "True True\n"
    monkeypatch.setenv("LITNETS_TEST_FRESH", "1")
    result = forked.run(command, cwd=tmp_path, env=dict(os.environ), timeout=60)
    assert result.stdout == "False False\n"


@pytest.mark.parametrize(
    ("code", "exit_code", "stderr"),
    [
        ("raise ValueError('bad')", 1, "ValueError: bad"),
        ("import sys; sys.exit('stopped')", 1, "stopped"),
        ("import sys; sys.exit()", 0, ""),
        # exit waits for a thread that is not a daemon, then runs the atexit functions
        (
            "import atexit, threading, time\n"
            "atexit.register(lambda: print('atexit ran', flush=True))\n"
            "threading.Thread(target=lambda: (time.sleep(1), print('thread done'))).start()",
            0,
            "",
        ),
    ],
)
def test_a_forked_command_exits_as_python_would(tmp_path, code, exit_code, stderr) -> None:
    command = [sys.executable, "-c", code]
    result = forked.run(command, cwd=tmp_path, env=dict(os.environ), timeout=60)
    assert result.returncode == exit_code
    assert stderr in result.stderr
    if "atexit" in code:
        assert result.stdout == "thread done\natexit ran\n"
    if exit_code == 1 and "raise" in code:
        assert "Traceback (most recent call last)" in result.stderr


def test_a_forked_command_past_its_timeout_is_killed(tmp_path) -> None:
    command = [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"]
    with pytest.raises(subprocess.TimeoutExpired) as stopped:
        forked.run(command, cwd=tmp_path, env=dict(os.environ), timeout=3)
    assert stopped.value.output == b"started\n"  # what subprocess.run gives, too


def test_other_python_settings_get_a_fresh_interpreter(tmp_path) -> None:
    code = "import sys; print('torch' in sys.modules, sys.flags.optimize)"
    level = "2" if os.environ.get("PYTHONOPTIMIZE") == "1" else "1"  # not this process's
    env = {**os.environ, "PYTHONOPTIMIZE": level}
    result = forked.run([sys.executable, "-c", code], cwd=tmp_path, env=env, timeout=60)
    assert result.stdout == f"False {level}\n"
