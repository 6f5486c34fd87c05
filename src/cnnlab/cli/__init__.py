"""The ``cnnlab`` command line: a thin layer over the library.

Each module in this package adds its subcommands through ``register(subparsers)``; a subcommand's
handler takes the parsed arguments and returns an exit code. Errors become one line on stderr and a
non-zero exit code (2 for bad input), never a traceback, unless ``--debug``. The library's log messages
(INFO and up: a resume, a stale lock taken over, a schedule kept) go to stderr as ``cnnlab COMMAND: ...``
lines; under torchrun only rank 0's INFO lines show.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Iterator, Sequence

from cnnlab import __version__


class CLIError(Exception):
    """An error the user can fix; the message says what was wrong and what to do."""


def parse_size(text: str | None, dims: int | None = 3) -> tuple[int, ...] | None:
    """``"3x224x224"`` -> ``(3, 224, 224)`` for ``--input``; None stays None; ``dims`` fixes the length (None:
    any length)."""
    if text is None:
        return None
    try:
        size = tuple(int(p) for p in text.lower().split("x"))
    except ValueError:
        size = ()
    if not size or min(size) < 1 or (dims is not None and len(size) != dims):
        count = f"{dims} " if dims else ""
        raise CLIError(f"--input must be CxHxW with {count}positive integers, such as 3x224x224; got {text!r}")
    return size


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnlab",
        description="Design, cost, compare and train convolutional networks from the classic architecture ideas.",
    )
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


@contextlib.contextmanager
def _log_to_stderr(command: str) -> Iterator[None]:
    """Show the ``cnnlab`` loggers' messages on stderr for the length of one command."""
    logger = logging.getLogger("cnnlab")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"cnnlab {command}: %(message)s"))
    handler.addFilter(_rank_0_info)
    before = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before)


def _rank_0_info(record: logging.LogRecord) -> bool:
    """Warnings from every rank, INFO lines from torchrun's rank 0 only. Asked when the library logs, so a
    command that logs nothing (``cnnlab plot``) starts without torch, which cnnlab.train imports."""
    from cnnlab.train.distributed import torchrun_env

    return record.levelno >= logging.WARNING or torchrun_env()[0] == 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cnnlab`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        with _log_to_stderr(args.command):
            code = int(args.handler(args) or 0)
        sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit where it would print an error
        return code
    except BrokenPipeError:
        return _broken_pipe()
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, KeyError, FileNotFoundError, PermissionError, OSError, TypeError) as exc:
        if args.debug:
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"cnnlab {args.command}: error: {message}", file=sys.stderr)
        return 2


def _broken_pipe() -> int:
    """The reader went away (``cnnlab models | head -1``): stop quietly with a shell's SIGPIPE status, 141.

    stdout is pointed at /dev/null so that Python's final flush of the unread output raises nothing (the
    recipe in the documentation of the ``signal`` module); no error line, as ``cat`` or ``ls`` print none.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout replaced by an object without a descriptor (tests)
        pass
    return 141
