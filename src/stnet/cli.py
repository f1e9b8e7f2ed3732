"""`stnet` command line. Each area owns its subcommands in its own module, which exposes
``register(subparsers)``; this file only collects them, so adding a command never edits another
area's code."""
from __future__ import annotations

import argparse
import importlib
import sys

from stnet.io import WriteError, os_error_line

# Modules providing `register(subparsers)`; each subcommand sets `func(args) -> int`.
COMMAND_MODULES = (
    "stnet.models.cli",
    "stnet.data.cli",
    "stnet.evaluation.cli",
    "stnet.engine.cli",
    "stnet.apps.cli",
)


def build_parser() -> argparse.ArgumentParser:
    from stnet import __version__

    parser = argparse.ArgumentParser(prog="stnet", description="STNet top-down human pose estimation")
    parser.add_argument("--version", action="version", version=f"stnet {__version__}")
    # `args.command` names the subcommand in every message; no subcommand may use that dest for an
    # option of its own (tests/test_cli.py checks).
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and name.startswith(e.name):  # area not present in this build
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    prefix = f"stnet {args.command}:"
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as e:
        # Files are written atomically, so what exists is complete; a command that knows more says
        # what was saved in the exception's message (stnet train: which epoch last.pt holds).
        print(f"{prefix} interrupted (Ctrl-C): {str(e) or 'files written so far are complete'}", file=sys.stderr)
        return 130
    except (ValueError, KeyError, TypeError, FileNotFoundError, FloatingPointError, WriteError) as e:
        # User errors get one clear line, not a traceback; STNET_DEBUG=1 shows the traceback.
        import os

        if os.environ.get("STNET_DEBUG"):
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        if isinstance(e, KeyError) and not str(msg).count(" "):
            # A bare key from deep inside a reader: say what it is, not just its name.
            msg = f"a file this command read lacks the field {str(msg)!r} (STNET_DEBUG=1 shows where)"
        if isinstance(e, OSError):
            msg = os_error_line(e)
        print(f"{prefix} error: {_one_line(msg)}", file=sys.stderr)
        return 2
    except OSError as e:
        # Read-only folder, a file where a folder is expected, full disk, ...: the path and the cause.
        import os

        if os.environ.get("STNET_DEBUG"):
            raise
        print(f"{prefix} error: {_one_line(os_error_line(e))}", file=sys.stderr)
        return 1


def _one_line(msg: object, limit: int = 2000) -> str:
    """A message on one line, cut to ``limit`` characters (a value echoed back must not flood)."""
    text = " ".join(str(msg).split())
    return text if len(text) <= limit else text[:limit] + " ..."


if __name__ == "__main__":
    sys.exit(main())
