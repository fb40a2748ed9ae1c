"""What the command lines of this package share: user errors, their one-line reports, and
argparse types.

A mistake by the user (a bad option, a missing file, a checkpoint for another model) is a
:class:`UsageError`; a command reports it as one ``error: ...`` line on stderr and exits with
status 2 (:func:`report_error`), never with a traceback. :class:`Parser` turns argparse's own
errors into a :class:`UsageError` too, for the commands that report them that way
(``predict``, ``validate``); the others keep argparse's usage message and exit.

This module imports nothing but the standard library's ``argparse``, ``sys`` and ``typing``,
so that importing it (and :mod:`mini_iformer`) stays cheap.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "UsageError",
    "Parser",
    "message_of",
    "one_line",
    "report_error",
    "int_at_least",
    "positive_int",
    "fraction",
    "positive",
    "non_negative",
    "probability",
]


class UsageError(ValueError):
    """A mistake by the user (the command line or the files it names): reported on one
    ``error: ...`` line, exit status 2, no traceback."""


class Parser(argparse.ArgumentParser):
    """An argument parser that raises :class:`UsageError` instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


# -- reporting ----------------------------------------------------------------------------------
def message_of(exc: BaseException) -> str:
    """An exception's message on one line: every run of whitespace (newlines included) becomes
    one space, a ``KeyError``'s repr quotes are dropped, and an empty message is the name of
    the exception's type."""
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    return " ".join(str(text).split()) or type(exc).__name__


def one_line(message: Any, details: int = 3) -> str:
    """A multi-line message as one line: its first non-blank line, then up to ``details`` more
    joined by ``"; "`` (followed by ``"; and N more"`` when some are left out). Spaces within a
    line are kept."""
    first, *rest = [line.strip() for line in str(message).splitlines() if line.strip()] or [""]
    more = f"; and {len(rest) - details} more" if len(rest) > details else ""
    return first + (" " + "; ".join(rest[:details]) + more if rest else "")


def report_error(message: Any, status: int = 2) -> int:
    """Print ``error: <message>`` on stderr and return ``status``, the exit status (2: a user
    error)."""
    print(f"error: {message}", file=sys.stderr)
    return status


# -- argparse types -----------------------------------------------------------------------------
def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low``."""
    expected = "a positive integer" if low == 1 else f"an integer >= {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


#: An argparse type: an integer >= 1 ("must be at least 1, got 0").
positive_int = int_at_least(1)


def fraction(text: str) -> float:
    """An argparse type: a float in (0, 1] (a centre-crop fraction, for one)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type: a ``kind`` (``int`` or ``float``) greater than 0 ("must be positive,
    got 0"; compare :data:`positive_int`)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def non_negative(text: str) -> float:
    """An argparse type: a float >= 0 (NaN is refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, got {text}")
    return value


def probability(text: str) -> float:
    """An argparse type: a float in [0, 1)."""
    value = non_negative(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be below 1, got {text}")
    return value
