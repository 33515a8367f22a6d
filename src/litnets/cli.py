"""``litnets <command> [arguments]``: the one entry point (also ``python -m litnets``).

The command's module (``litnets.commands.<command>``) is run as ``__main__`` with the rest
of the arguments, exactly as ``python -m litnets.commands.<command> ...`` would run it: so
Lightning, which starts DDP ranks by re-running ``__main__``, re-runs the same command.
"""

import time

STARTED_AT = time.perf_counter()  # before the heavy imports: runs report their start-up time
STARTED_EPOCH = time.time()  # what this process made is newer than this

import difflib  # noqa: E402
import runpy  # noqa: E402
import sys  # noqa: E402

from litnets.commands import COMMANDS  # noqa: E402


def usage() -> str:
    from litnets import __version__

    width = max(map(len, COMMANDS))
    lines = [
        f"usage: litnets <command> [arguments]        (litnets {__version__})",
        "",
        "commands:",
        *(f"  {name:<{width}}  {about}" for name, about in COMMANDS.items()),
        "",
        "`litnets <command> --help` lists what a command takes: config groups, settings, flags.",
        "The Python API is the same: `from litnets import train; train(['model=mlp'])`.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run ``litnets <command> ...``; returns (or exits with) the command's status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(usage(), file=sys.stderr)
        return 2
    command, *rest = argv
    if command in ("-h", "--help", "help"):
        print(usage())
        return 0
    if command in ("-V", "--version"):
        from litnets import __version__

        print(f"litnets {__version__}")
        return 0
    if command not in COMMANDS:
        close = difflib.get_close_matches(command, COMMANDS, n=1)
        hint = f"did you mean `litnets {close[0]}`? " if close else ""
        print(
            f"litnets: error: unknown command {command!r}; {hint}"
            f"choose one of: {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    sys.argv = [sys.argv[0], *rest]
    runpy.run_module(f"litnets.commands.{command}", run_name="__main__", alter_sys=True)
    return 0
