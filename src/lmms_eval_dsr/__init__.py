"""lmms-eval plugins of trl-latent: the benchmark tasks (one per evaluation protocol) and the model adapter.

lmms-eval 0.7.3 finds models through the ``lmms_eval.models`` entry point but has no entry point for tasks; our model
entry point registers the task folder while lmms-eval loads it (see ``lmms_eval_dsr.models``), and ``tasks_dir()``
gives its installed location for ``--include_path`` where that hook is unavailable.
"""

from __future__ import annotations

from pathlib import Path

TASK_NAMES = ("dsr_bench", "dsr_bench_4dthinker", "dsr_bench_think", "dyn_bench", "dyn_bench_think")


def tasks_dir() -> str:
    """The installed folder of our task YAMLs (``lmms-eval --include_path`` / ``TaskManager(include_path=…)``)."""
    return str(Path(__file__).resolve().parent / "tasks")
