"""The item stages on Ray: the same stage plans, their items spread over a local Ray instance or a cluster.

:func:`datagen.manifest.run_items` hands a stage's pending items to :func:`ray_executor` instead of running them
in-process. Stages that load something first (a segmenter, a structure-from-motion backend, the chat client) run
in actors that load it once each; the others run as plain tasks; the API CoT stage runs in one actor serving
``cot.concurrency`` requests at a time, the limit over the whole cluster. Workers write each item's files
(atomically, as a local run does) and return what the item's ``process`` returned; the driver records each item in
the stage's manifest as its result arrives and is the manifests' only writer. So a killed worker or driver loses
only the items in flight, a rerun resumes from the manifests exactly as after a local run, and the outputs are the
local run's, byte for byte. Every worker must see the input and output folders at the same paths (one machine, or
a shared filesystem on a cluster) and import this package.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .manifest import Execute, Outcome


logger = logging.getLogger(__name__)

MISSING = "running datagen on Ray needs the ray package: pip install 'trl-latent[ray]'"


@dataclass
class RayConfig:
    enabled: bool = False
    """Run the per-clip stages on Ray (``trl-latent-datagen run --ray [ADDRESS]``)."""
    address: str | None = None
    """Cluster to join: ``auto`` (the one ``ray start`` runs on this node), ``<head>:6379`` or ``ray://<head>:10001``;
    none starts a local Ray instance."""
    num_cpus: int | None = None
    """CPUs of a local instance (none: every core); ignored when joining a cluster."""
    num_gpus: int | None = None
    """GPUs of a local instance (none: those Ray detects); ignored when joining a cluster."""
    task_cpus: float = 1.0
    """CPUs each task of a CPU stage, and each ``segment`` / ``annotate`` actor, reserves."""
    segment_actors: int = 1
    """Actors of the ``segment`` stage, each loading the segmenter once."""
    segment_gpus: float = 0.0
    """GPUs each ``segment`` actor reserves: 1 for a model on GPU (Ray then places the actors on GPU workers)."""
    annotate_actors: int = 1
    """Actors of the ``annotate`` stage, each holding one structure-from-motion backend."""
    items_per_task: int | None = None
    """Items of a CPU stage each task runs: a task costs milliseconds of scheduling, more than a small item (a
    template CoT) takes. None: automatic, about four tasks per CPU slot and at most 32 items each."""
    max_retries: int = 1
    """Times Ray reruns an item whose worker died (crash, OOM kill, lost node) before it is recorded failed (a later
    run retries it, as any failed item)."""


def require_ray():
    """The ``ray`` module, or a RuntimeError naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise RuntimeError(MISSING) from None
    return ray


def connect(settings: RayConfig):
    """Ray, initialised once per process: the configured cluster, the one a ``ray job submit`` entrypoint runs in
    (``$RAY_ADDRESS``), or a local instance."""
    ray = require_ray()
    if not ray.is_initialized():
        address = settings.address or os.environ.get("RAY_ADDRESS")
        try:
            if address:
                ray.init(address=address)
            else:
                ray.init(num_cpus=settings.num_cpus, num_gpus=settings.num_gpus, include_dashboard=False)
        except Exception as e:  # noqa: BLE001 - Ray raises bare Exceptions on start-up; the user needs one line
            raise RuntimeError(start_failure(address, e)) from e
    return ray


def start_failure(address: str | None, error: BaseException) -> str:
    """One line saying why Ray did not start and what to try. Ray gives a local node 30 s (not configurable) to
    register; on a loaded machine it times out ("node timed out during startup")."""
    reason = " ".join(str(error).split()) or type(error).__name__
    if address:
        return (f"could not join the Ray cluster at {address!r}: {reason}. Check that it runs (`ray status` on the "
                "head node) and that the address is right (--ray ADDRESS, ray.address, $RAY_ADDRESS)")
    return (f"a local Ray instance did not start: {reason}. Try again when the machine is less loaded, with fewer "
            "workers (--set ray.num_cpus=1), after `ray stop` ends leftover Ray processes, or start Ray first "
            "(`ray start --head`) and join it with --ray auto; without --ray the stages run in this process")


def _attempt(run: Callable[[str], object], batch: list[str]) -> list[tuple[object, Exception | None]]:
    """``run(item)`` for each item of ``batch`` on a worker; an exception comes back as a value, so the driver
    records it as a local run does."""
    outcomes = []
    for item in batch:
        try:
            outcomes.append((run(item), None))
        except Exception as e:  # noqa: BLE001 - one bad clip must not stop a 10k-clip run
            outcomes.append((None, e))
    return outcomes


class ItemWorker:
    """A Ray actor serving one stage: ``setup`` once (the model is loaded once per actor), then item after item."""

    def __init__(self, work: tuple):
        # setup, run and teardown come in one tuple, so one pickle: they share the state setup fills
        setup, self.run, self.teardown = work
        setup()

    def ready(self) -> bool:
        return True

    def process(self, batch: list[str]) -> list[tuple[object, Exception | None]]:
        return _attempt(self.run, batch)

    def close(self) -> None:
        if self.teardown is not None:
            self.teardown()


@dataclass
class Actors:
    """How the actors of a stage that loads something first (``setup``) are laid out on Ray."""

    count: int
    options: dict = field(default_factory=dict)
    """Ray options of each actor (``num_cpus``, ``num_gpus``, ``max_concurrency``, ``runtime_env``)."""


def ray_executor(settings: RayConfig, stage: str, actors: Actors,
                 teardown: Callable[[], None] | None = None) -> Execute:
    """The :data:`~datagen.manifest.Execute` that runs ``stage``'s items on Ray (connecting on the first item):
    as tasks when the stage has no ``setup``, else on ``actors`` (each runs ``setup`` once and ``teardown`` at the
    end). The caller (:mod:`datagen.pipeline`) decides the layout: this module knows Ray, not the stages."""

    def execute(items: list[str], run: Callable[[str], object], setup: Callable[[], None] | None) -> Iterator[Outcome]:
        ray = connect(settings)
        retries = settings.max_retries
        if setup is None:
            task = ray.remote(_attempt).options(num_cpus=settings.task_cpus, max_retries=retries)
            run_ref = ray.put(run)
            slots = max(1, int(ray.cluster_resources().get("CPU", 1) / settings.task_cpus))
            size = settings.items_per_task or max(1, min(32, len(items) // (4 * slots)))
            yield from _drive(ray, items, size, 2 * slots, lambda batch, _: task.remote(run_ref, batch))
            return
        count = actors.count
        worker = ray.remote(ItemWorker).options(max_restarts=retries, max_task_retries=retries, **actors.options)
        handles = [worker.remote((setup, run, teardown)) for _ in range(count)]
        try:
            try:
                ray.get([actor.ready.remote() for actor in handles])
            except ray.exceptions.RayError as e:  # setup failed: stop the stage before any item, as locally
                raise RuntimeError(f"{stage}: its Ray workers could not start: {e}") from None
            per_actor = actors.options.get("max_concurrency", 1)
            yield from _drive(ray, items, 1, 2 * count * per_actor,
                              lambda batch, n: handles[n % count].process.remote(batch))
            try:
                ray.get([actor.close.remote() for actor in handles])
            except ray.exceptions.RayError as e:  # an actor that died for good holds nothing to release
                logger.warning("%s: a Ray worker could not be closed: %s", stage, e)
        finally:
            for actor in handles:
                ray.kill(actor)

    return execute


def _drive(ray, items: list[str], size: int, window: int,
           submit: Callable[[list[str], int], object]) -> Iterator[Outcome]:
    """Submit ``items`` in batches of ``size``, at most ``window`` batches in flight; yield each item's outcome as its
    batch returns. A worker that died with its batch (after Ray's retries) makes that batch's items fail, not the
    stage."""
    batches = iter([items[i:i + size] for i in range(0, len(items), size)])
    in_flight, submitted = {}, 0

    def refill() -> None:
        nonlocal submitted
        for batch in batches:
            in_flight[submit(batch, submitted)] = batch
            submitted += 1
            if len(in_flight) >= window:
                return

    refill()
    try:
        while in_flight:
            (ref,), _ = ray.wait(list(in_flight), num_returns=1)
            batch = in_flight.pop(ref)
            try:
                outcomes = ray.get(ref)
            except ray.exceptions.RayError as e:  # the worker died (crash, OOM kill, lost node)
                outcomes = [(None, e)] * len(batch)
            for item, (outcome, error) in zip(batch, outcomes):
                yield item, outcome, error
            refill()
    finally:  # an interrupted driver leaves nothing running
        for ref in in_flight:
            ray.cancel(ref)
