"""Backends selectable by name in a config section (``segment.backend``, ``annotate.backend``).

Each pluggable stage keeps a :class:`Registry`: a backend registers itself with a decorator, a config names it, and the
stage builds it from its section's config, with one error style for a name nobody registered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Registry(dict[str, Callable[[Any], Any]]):
    """``name → factory(config)``; ``section`` is the config section whose ``backend`` field picks one."""

    def __init__(self, section: str) -> None:
        super().__init__()
        self.section = section

    def register(self, name: str) -> Callable[[Callable], Callable]:
        """Class decorator: make a backend selectable as ``<section>.backend: <name>``."""

        def wrap(factory: Callable) -> Callable:
            self[name] = factory
            return factory

        return wrap

    def build(self, config: Any) -> Any:
        """The backend ``config.backend`` names, built from ``config``."""
        if config.backend not in self:
            raise ValueError(f"{self.section}.backend={config.backend!r} unknown; choose one of {sorted(self)}")
        return self[config.backend](config)
