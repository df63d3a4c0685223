"""lmms-eval registration: the ``lmms_eval.models`` entry point of trl-latent points at :func:`manifests`.

The adapter classes are named by their import paths, so lmms-eval imports them (and torch / transformers) only when a
run asks for ``--model latent_qwen2_5_vl`` (Qwen2.5-VL checkpoints) or ``--model latent_vlm`` (any supported family).

lmms-eval 0.7.3 has no entry point for tasks, but it loads this entry point while ``lmms_eval.models`` is imported,
before any ``TaskManager`` exists. :func:`manifests` uses that moment to make every ``TaskManager`` also index our task
folder, so ``lmms-eval --tasks dsr_bench`` works after ``pip install`` without ``--include_path``. A version whose
``TaskManager.initialize_tasks`` no longer takes ``include_path`` gets no hook, and a warning naming ``--include_path``.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from typing import Any

MODEL_ID = "latent_qwen2_5_vl"
CLASS_PATH = "lmms_eval_dsr.models.latent_qwen2_5_vl.LatentQwen2_5_VL"
VLM_MODEL_ID = "latent_vlm"
VLM_CLASS_PATH = "lmms_eval_dsr.models.latent_vlm.LatentVLM"
_HOOKED = "_trl_latent_tasks_hooked"


def include_path_hint() -> str:
    from lmms_eval_dsr import tasks_dir

    return (f"trl-latent could not register its tasks (dsr_bench, dyn_bench, …) with this lmms-eval version; pass "
            f"`--include_path {tasks_dir()}` (or TaskManager(include_path=lmms_eval_dsr.tasks_dir())).")


def register_task_folder() -> bool:
    """Make ``TaskManager.initialize_tasks`` add our task folder to ``include_path``; ``False`` (with a warning naming
    ``--include_path``) when this lmms-eval has no such hook point."""
    from lmms_eval_dsr import tasks_dir

    try:
        from lmms_eval.tasks import TaskManager

        original = TaskManager.initialize_tasks
        if getattr(original, _HOOKED, False):
            return True
        if "include_path" not in inspect.signature(original).parameters:
            raise TypeError("TaskManager.initialize_tasks has no include_path parameter")
    except Exception as error:  # noqa: BLE001 - a failure here must never cost lmms-eval our model registration
        warnings.warn(f"{include_path_hint()} ({type(error).__name__}: {error})", stacklevel=2)
        return False
    ours = tasks_dir()

    @functools.wraps(original)
    def initialize_tasks(self: Any, include_path: str | list[str] | None = None, *args: Any, **kwargs: Any) -> Any:
        paths = [include_path] if isinstance(include_path, str) else list(include_path or [])
        if ours not in paths:
            paths.append(ours)
        return original(self, paths, *args, **kwargs)

    setattr(initialize_tasks, _HOOKED, True)
    TaskManager.initialize_tasks = initialize_tasks
    return True


def manifests() -> list[Any]:
    """The ``ModelManifest`` list lmms-eval reads from the entry point (a simple model: prompt + visuals in); also
    registers our task folder (see the module docstring)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    register_task_folder()
    return [ModelManifest(model_id=MODEL_ID, simple_class_path=CLASS_PATH)]


def latent_vlm_manifests() -> list[Any]:
    """The ``latent_vlm`` entry point: the family-agnostic model (any family trl-latent supports)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    register_task_folder()
    return [ModelManifest(model_id=VLM_MODEL_ID, simple_class_path=VLM_CLASS_PATH)]
