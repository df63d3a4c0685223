"""How the command-line doors report a user's mistake: one line, the traceback only on request.

A bad config, an empty ``metadata.csv`` or a Ray instance that cannot start is the user's to fix, and a 25-line
traceback buries the one line that says what is wrong. ``--debug`` or ``TRL_LATENT_DEBUG=1`` (the variable the
``trl-latent`` command reads too) brings the traceback back, for bug reports.
"""

from __future__ import annotations

import os

DEBUG_ENV = "TRL_LATENT_DEBUG"

USER_ERRORS = (ValueError, RuntimeError, FileNotFoundError, FileExistsError)
"""What bad input, a refused API call or a stale output raises; anything else is a bug and keeps its traceback."""


def debug_requested(flag: bool = False) -> bool:
    """``flag`` (``--debug``) or ``$TRL_LATENT_DEBUG`` set to anything but empty, 0, false or no."""
    return flag or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def one_line(command: str, error: BaseException) -> SystemExit:
    """The ``SystemExit`` (status 1) a command raises instead of ``error``: ``<command>: <message> [traceback: ...]``
    (the hint reads as the ``trl-latent`` command's)."""
    message = " ".join(str(error).split()) or type(error).__name__
    return SystemExit(f"{command}: {message} [traceback: {DEBUG_ENV}=1]")
