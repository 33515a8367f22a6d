"""Run a command in a process forked from one that has imported torch and Lightning.

Fresh interpreters importing torch and Lightning (8-11 s each on two cores, before a run of
a second or two) were most of the suite's CPU time. Python's own ``forkserver`` imports
them once per test worker; each command then runs in a child forked from it as its
interpreter would run it (``python script.py``, ``python -m module``, ``python -c code``, a
console script): litnets and Hydra are imported fresh in the child, with the command's
``sys.argv``, environment, working directory and ``PYTHONPATH``; its output is captured and
its exit code returned. Each child is a new process from that import on: runs share nothing.

A command that is not one of those forms, or whose environment changes how Python starts
(any other ``PYTHON*`` setting), runs in a fresh interpreter, and so does every command
when ``LITNETS_TEST_FRESH=1``. Tests that signal a run, time start-up, install a wheel, run
a shell or launch ``torchrun``/``srun``/``sbatch`` start their processes themselves.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
import traceback
import types
from collections.abc import Mapping
from pathlib import Path

PRELOAD = ["torch", "lightning"]  # exactly what start-up is measured against

_context = None


def _forkserver() -> multiprocessing.context.BaseContext:
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


@functools.cache
def _interpreter_path() -> list[str]:
    """``sys.path`` of a fresh interpreter, less its first entry (the script's dir) and
    ``PYTHONPATH``: the test process's own has pytest's additions (tests/, the repo)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = "import json, sys; print(json.dumps(sys.path[1:]))"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    return json.loads(found.stdout)


def _starts_like_this_process(env: dict[str, str]) -> bool:
    """Whether ``env`` leaves an interpreter's start-up as this one's (``PYTHON*`` settings
    other than ``PYTHONPATH`` and ``PYTHONUNBUFFERED``, which the child applies itself)."""

    def start_up(environment: Mapping[str, str]) -> dict[str, str]:
        applied = ("PYTHONPATH", "PYTHONUNBUFFERED")
        return {k: v for k, v in environment.items() if k.startswith("PYTHON") and k not in applied}

    return start_up(env) == start_up(os.environ)


def _python_entry(command: list[str]) -> tuple[str, str, list[str]] | None:
    """(how, what, argv) if ``command`` is a Python program an interpreter would run as
    ``__main__``: ``python script.py ...``, ``python -m module ...``, ``python -c code ...``
    or a console script of this interpreter."""
    program = command[0]
    if program == sys.executable:
        if len(command) > 2 and command[1] in ("-m", "-c"):
            how = "module" if command[1] == "-m" else "code"
            return how, command[2], [command[2] if how == "module" else "-c", *command[3:]]
        if len(command) > 1 and command[1].endswith(".py"):
            return "path", command[1], command[1:]
        return None
    path = Path(program)
    if path.is_file():
        with path.open("rb") as f:
            first = f.readline().decode(errors="replace")
        interpreter = first[2:].split()[0] if first.startswith("#!") and first[2:].split() else ""
        if interpreter and Path(interpreter).resolve() == Path(sys.executable).resolve():
            return "path", program, command  # a console script of this interpreter
    return None


def _child(
    how: str,
    what: str,
    argv: list[str],
    cwd: str,
    env: dict[str, str],
    interpreter_path: list[str],
    out: str,
    err: str,
) -> None:
    """In the forked process: become ``argv`` run by a fresh interpreter, then exit."""
    for fd, name in ((1, out), (2, err)):
        file = os.open(name, os.O_WRONLY | os.O_TRUNC)
        os.dup2(file, fd)
        os.close(file)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    unbuffered = bool(env.get("PYTHONUNBUFFERED"))  # as ``python -u`` has them, or not
    sys.stdout.reconfigure(write_through=unbuffered)
    sys.stderr.reconfigure(write_through=unbuffered)
    first = {"path": str(Path(what).resolve().parent), "module": os.getcwd(), "code": ""}[how]
    python_path = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [first, *python_path, *interpreter_path]
    sys.argv = list(argv)
    code = 0
    try:
        if how == "module":
            runpy.run_module(what, run_name="__main__", alter_sys=True)
        elif how == "path":
            runpy.run_path(what, run_name="__main__")
        else:
            main = types.ModuleType("__main__")
            sys.modules["__main__"] = main
            exec(compile(what, "<string>", "exec"), main.__dict__)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if not isinstance(stop.code, int | None):
            print(stop.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    import atexit
    import threading

    # what the interpreter does on exit: wait for non-daemon threads (a run that leaves one
    # behind hangs here as it would for a user), then the atexit functions (loggers, ...)
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run(
    command: list[str], *, cwd: Path | str, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess:
    """``subprocess.run(command, capture_output=True, text=True, ...)``, forked when it can be."""
    entry = _python_entry(command)
    if entry is None or os.environ.get("LITNETS_TEST_FRESH") or not _starts_like_this_process(env):
        return subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env
        )
    with tempfile.TemporaryDirectory(prefix="litnets-forked-") as folder:
        out, err = Path(folder) / "stdout", Path(folder) / "stderr"
        out.touch()
        err.touch()
        process = _forkserver().Process(
            target=_child,
            args=(*entry, str(cwd), dict(env), _interpreter_path(), str(out), str(err)),
        )
        process.start()
        process.join(timeout)
        if process.exitcode is None:
            process.kill()
            process.join()
            # bytes, as subprocess.run gives them on a timeout even with text=True
            raise subprocess.TimeoutExpired(command, timeout, out.read_bytes(), err.read_bytes())
        return subprocess.CompletedProcess(
            command, process.exitcode, out.read_text(), err.read_text()
        )
