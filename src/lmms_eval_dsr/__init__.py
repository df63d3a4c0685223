"""lmms-eval plugins of trl-latent: the ``dsr_bench`` / ``dyn_bench`` tasks (+ ``_think``) and the model adapter.

lmms-eval 0.7.3 finds models through the ``lmms_eval.models`` entry point but has no entry point for tasks, so the
task folder is passed with ``--include_path``; ``tasks_dir()`` gives its installed location.
"""

from __future__ import annotations

from pathlib import Path

TASK_NAMES = ("dsr_bench", "dsr_bench_4dthinker", "dsr_bench_think", "dyn_bench", "dyn_bench_think")


def tasks_dir() -> str:
    """The installed folder of our task YAMLs, for ``lmms-eval --include_path`` or ``TaskManager(include_path=…)``."""
    return str(Path(__file__).resolve().parent / "tasks")
