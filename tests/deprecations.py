"""Pytest plugin: fail a test when OUR code makes a call that a dependency announces it will remove.

``transformers<6`` and ``trl<1.17`` are only honest bounds if nothing we call is already scheduled for removal inside
them. ``-W error::FutureWarning:trl_latent`` is not enough: a warning is attributed to the frame ``stacklevel`` points at,
and transformers' ``deprecate_kwarg`` (``stacklevel=2``) points into its own modules when the deprecated argument is
passed on by an outer model class. So this plugin wraps :func:`warnings.warn` and, for a FutureWarning or
DeprecationWarning whose text announces a removal, walks the call stack outward from the package that raised it,
past that package's own frames and call plumbing (``torch.nn.Module.__call__``, accelerate hooks, dataclass
``__init__``): the first frame left is the caller of the deprecated API. When it is ours (one of our packages or a
benchmark script) the running test fails, naming it. A deprecated call that a dependency makes itself (TRL reading a
renamed transformers attribute inside ``Trainer.train``) has that dependency as its caller and is left alone.
Warnings that dependencies raise on their own (no frame of ours on the stack) are left alone, and a test that feeds a
deprecated spelling on purpose (to check we still honour a user's old recipe) says so with
``@pytest.mark.user_deprecation``.
"""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parent.parent
_OURS = tuple(str(_REPO / part) + "/" for part in ("src/trl_latent", "src/lmms_eval_dsr", "src/datagen", "benchmarks"))
_REMOVAL = re.compile(r"deprecat|will be removed|removed in", re.IGNORECASE)
_CATEGORIES = (FutureWarning, DeprecationWarning, PendingDeprecationWarning)

_found: list[str] = []
_original_warn = warnings.warn


_PLUMBING = {"torch", "accelerate", "functools", "contextlib", "dataclasses"}


def _package(frame) -> str:
    return str(frame.f_globals.get("__name__", "")).split(".", 1)[0]


def _caller_if_ours(frame) -> str | None:
    """Our ``file:line`` when the first frame outside the raising package and call plumbing is ours, else None."""
    raising = _package(frame)
    while frame is not None and (
        _package(frame) in _PLUMBING | {raising} or frame.f_code.co_filename.startswith("<")
    ):
        frame = frame.f_back
    if frame is not None and frame.f_code.co_filename.startswith(_OURS):
        return f"{Path(frame.f_code.co_filename).relative_to(_REPO)}:{frame.f_lineno}"
    return None


def _checked_warn(message, category=None, stacklevel=1, source=None, **kwargs):
    category = category or (message.__class__ if isinstance(message, Warning) else UserWarning)
    if issubclass(category, _CATEGORIES) and _REMOVAL.search(str(message)):
        where = _caller_if_ours(sys._getframe(1))
        if where is not None:
            _found.append(f"{category.__name__} via {where}: {message}")
    return _original_warn(message, category, stacklevel + 1, source, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "user_deprecation: the test passes a deprecated spelling on purpose")
    warnings.warn = _checked_warn


def pytest_unconfigure(config: pytest.Config) -> None:
    warnings.warn = _original_warn


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    _found.clear()
    result = yield
    if _found and item.get_closest_marker("user_deprecation") is None:
        calls = "\n".join(dict.fromkeys(_found))
        _found.clear()
        pytest.fail(f"our code calls something its dependency will remove:\n{calls}", pytrace=False)
    return result
