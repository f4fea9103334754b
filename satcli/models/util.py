"""Helpers shared by the model loaders: short error reasons, listings, and quiet torch loading."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence

_SHOWN_KEYS = 5


@contextlib.contextmanager
def _quiet_torch() -> Iterator[None]:
    """Keep torch's deprecation warnings and logged tracebacks off the user's terminal while loading."""
    loggers = [logging.getLogger(name) for name in ("torch.export", "torch._export", "torch.jit")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*TorchScript archive.*", category=UserWarning)
        for logger in loggers:
            logger.setLevel(logging.CRITICAL)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def _reason(exc: BaseException, *, whole: bool = False, limit: int = 200) -> str:
    """A short one-line reason from an exception, without torch's multi-line advice; `whole` joins every line
    instead (transformers splits one sentence over lines: "... from one of: (1) ..., (2) ...")."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = (" ".join(lines) if whole else lines[0]) if lines else ""
    text = text.split(". This is an internal miniz error")[0]
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _first(items: Sequence[str]) -> list[str]:
    shown = list(items[:_SHOWN_KEYS])
    if len(items) > _SHOWN_KEYS:
        shown.append(f"... ({len(items) - _SHOWN_KEYS} more)")
    return shown


def _count(items: Sequence[str], noun: str) -> str:
    return f"{len(items)} {noun}" + ("" if len(items) == 1 else "s")


def _kwargs_text(kwargs: Mapping[str, object]) -> str:
    if not kwargs:
        return ""
    return "(" + ", ".join(f"{key}={value!r}" for key, value in kwargs.items()) + ")"
