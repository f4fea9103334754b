"""The consoles commands print to: a closed pipe ends the run quietly, like any Unix tool."""

from __future__ import annotations

import os
from typing import Any

from rich.console import Console


class _Console(Console):
    # Off a terminal with no COLUMNS (CI logs, files): renderers may widen the console to keep names whole.
    fit_content = False

    def on_broken_pipe(self) -> None:
        # Rich would exit with code 1, the code of a failed check; the entry point handles it instead.
        raise BrokenPipeError


def stdout_console(**kwargs: Any) -> Console:
    """The console for results on stdout (no soft wrapping: tables keep their lines).

    Off a terminal, tables take their natural width instead of Rich's 80 columns, unless COLUMNS is set.
    """
    console = _Console(soft_wrap=False, **kwargs)
    console.fit_content = not console.is_terminal and not os.environ.get("COLUMNS") and "width" not in kwargs
    return console


def stderr_console(**kwargs: Any) -> Console:
    """The console for progress and messages on stderr."""
    return _Console(stderr=True, **kwargs)


# Library messages speak of the thing, not of the flag (they are read from the Python API too); on the command
# line the flag is named where a message points at one.
FLAG_HINTS = (
    ("or allow the download", "or pass --download"),
    ("give no architecture for it", "drop --arch"),
    ("run on the CPU", "use --device cpu"),
    ("(check the layer selection)", "(check --layers / --exclude)"),
    ("the batch size must", "--batch-size must"),
    ("the number of data-loading workers must", "--workers must"),
    ("the number of samples to use must", "--max-samples must"),
    ("the image size must", "--image-size must"),
    ("the variance threshold delta must", "--threshold (delta) must"),
    ("bad architecture ", "bad --arch "),
    ("bad architecture argument ", "bad --arch-kwargs item "),
    (
        "its per-sample input shape is unknown",
        "its per-sample input shape is unknown; pass --input-shape C,H,W (e.g. 1,8,8)",
    ),
    # taps.untracked.SCRIPT_FIX, the fix for layers a TorchScript graph hides
    (
        "load the weights into the model's Python class (an architecture) instead of the TorchScript archive",
        "pass --arch MODULE:FACTORY (or a torchvision name) to load the weights into the Python model",
    ),
)


def with_flags(message: str) -> str:
    """The message with the command-line flag named where it speaks of one."""
    for phrase, flag in FLAG_HINTS:
        message = message.replace(phrase, flag)
    return message
