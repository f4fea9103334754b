"""The entry point: run the app and map every failure to one line and an exit code.

0 success, 1 a check failed, 2 bad input or usage, 3 an internal error (a bug: please report it), 130 interrupted,
143 terminated (SIGTERM: temp files are removed as for Ctrl-C)."""

from __future__ import annotations

import gc
import os
import signal
import sys
import warnings

import typer
from rich.console import Console
from rich.markup import escape

from satcli.cli.app import EXIT_INTERNAL, EXIT_USAGE, app, tidy_help
from satcli.cli.console import with_flags
from satcli.errors import SatcliError, one_line

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a Unix tool killed by a closed pipe reports
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(BaseException):
    """SIGTERM (a CI runner cancelling a job) as an exception, so the same clean-up runs as for Ctrl-C.

    Not a KeyboardInterrupt: click would turn that into its Abort and the exit code would say Ctrl-C."""


class Interrupted(BaseException):
    """Ctrl-C (SIGINT) as an exception of our own: typer turns a KeyboardInterrupt into a plain exit code 130
    before _run could say anything, so the one-line message would be lost. Clean-up runs as for any exception."""


# Set by the SIGTERM handler: its exception can be lost when the signal lands while Python runs code whose
# exceptions are unraisable (a __del__, a weakref callback), and the run would then end with exit 0.
_terminate_requested = False


def _on_sigterm(signum: int, frame: object) -> None:
    global _terminate_requested
    _terminate_requested = True
    raise Terminated


def _on_sigint(signum: int, frame: object) -> None:
    raise Interrupted


def _catch_signals() -> dict[int, object]:
    """Turn SIGTERM into Terminated and Ctrl-C into Interrupted (only in the main thread, where Python can
    install handlers; SIGINT only when Python's own handler is in place, not when the shell ignores it);
    returns the previous handlers to restore."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, _on_sigterm)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, _on_sigint)
    return previous


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and turn every expected failure into one line and an exit code."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\..*")
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    global _terminate_requested
    _terminate_requested = False
    previous = _catch_signals()
    try:
        _run(argv, err)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]


def entry() -> None:
    """The `satcli` command (console script and `python -m satcli`): `main`, and no final garbage collection.

    At exit the interpreter collects every object once more: with torch and transformers loaded that is
    about a second (GPT-2 run: 1.0-1.2 s of a 12 s process) spent freeing memory the process returns anyway.
    Freezing moves the objects out of the collector's reach; atexit handlers, weakref finalizers (temp files)
    and the flush of stdout/stderr still run, and satcli closes its own files before it returns. Only here,
    not in `main`: tests and the Python API run in processes that go on.
    """
    try:
        main()
    finally:
        gc.freeze()


def _abort_writers() -> None:
    """A store writer the signal caught before its `with` block began has no clean-up of its own to run."""
    writer = sys.modules.get("satcli.store.writer")
    if writer is not None:
        writer.abort_open_writers()


def _run(argv: list[str] | None, err: Console) -> None:
    """Run the app; exit with the code its outcome maps to."""
    command = tidy_help(typer.main.get_command(app))
    try:
        code = command.main(args=argv, prog_name="satcli", standalone_mode=False)
    except SatcliError as exc:
        err.print(f"[bold red]error:[/] {escape(with_flags(one_line(exc, limit=2000)))}")
        sys.exit(EXIT_USAGE)
    except typer.TyperException as exc:  # usage errors from Typer's parser carry their exit code
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            typer.echo(ctx.get_help())
            sys.exit(0)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        err.print(f"[bold red]error:[/] {escape(exc.format_message() + hint)}")
        sys.exit(int(getattr(exc, "exit_code", EXIT_USAGE)))
    except BrokenPipeError:
        # The reader went away (`satcli report S | head -1`): no message, and no second error at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(EXIT_BROKEN_PIPE)
    except Terminated:
        _terminated(err)
    except (Interrupted, typer.Abort, KeyboardInterrupt):
        _abort_writers()
        err.print("interrupted; finished results and existing stores are kept")
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("SATCLI_DEBUG"):
            raise
        what = escape(f"{type(exc).__name__}: {one_line(exc)}")
        err.print(
            f"[bold red]internal error:[/] {what} - a bug in satcli; please report it with the command you ran "
            "(SATCLI_DEBUG=1 shows the traceback)"
        )
        sys.exit(EXIT_INTERNAL)
    if _terminate_requested:  # the signal's exception was swallowed: the run finished, but was told to stop
        _terminated(err)
    sys.exit(code if isinstance(code, int) else 0)


def _terminated(err: Console) -> None:
    _abort_writers()
    err.print("terminated; finished results and existing stores are kept")
    sys.exit(EXIT_TERMINATED)
