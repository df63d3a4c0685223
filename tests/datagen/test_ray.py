"""The pipeline on a local 2-worker Ray instance: the local run's outputs, byte for byte, and resuming after a worker
died mid-stage. Skipped without the ``ray`` extra."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dg_world import SPECS, write_dataset
from test_pipeline import _config, _tree

import datagen.pipeline as pipeline
from datagen import DatagenConfig, run_pipeline
from datagen.cli import _config as cli_config, build_parser
from datagen.io import read_jsonl


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False)  # one start for the module: Ray start-up is the slow part
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, Path]:
    """A dataset and its single-process run (the reference every Ray run must match)."""
    root = tmp_path_factory.mktemp("world")
    dataset = write_dataset(root / "data", SPECS)
    run_pipeline(_config(dataset, root / "local"))
    return dataset, root / "local"


def _ray_config(dataset, out, stages=None, **ray):
    return _config(dataset, out, ray={"enabled": True, **ray}, **({"stages": stages} if stages else {}))


def test_ray_run_matches_the_local_run(local_ray, world, tmp_path):
    dataset, local = world
    result = run_pipeline(_ray_config(dataset, tmp_path / "ray"))
    assert not result.failed
    assert _tree(tmp_path / "ray") == _tree(local)
    for stage in ("frames", "segment", "imagery", "cot"):  # the driver recorded each item once
        items = [r["item"] for r in read_jsonl(tmp_path / "ray" / "manifests" / f"{stage}.jsonl")]
        assert len(items) == len(set(items)) > 0
    local_rerun = run_pipeline(_config(dataset, tmp_path / "ray"))  # the ray section is no part of the fingerprints
    assert all(not r.done for name, r in local_rerun.stages.items() if name not in ("export", "validate"))


def test_killed_worker_resumes_to_the_local_outputs(local_ray, world, tmp_path, monkeypatch):
    dataset, local = world
    marker, original = tmp_path / "crashed", pipeline.render_question

    def crash_once(qa, *args, **kwargs):  # pickled by value into the workers, monkeypatched global included
        if qa["qa_id"].startswith("pan-") and not marker.exists():
            marker.touch()
            os._exit(1)  # the worker process dies in the middle of the imagery stage
        return original(qa, *args, **kwargs)

    monkeypatch.setattr(pipeline, "render_question", crash_once)
    out = tmp_path / "ray"
    result = run_pipeline(_ray_config(dataset, out, max_retries=0))
    assert marker.exists() and list(result.stages["imagery"].failed) == ["pan"]
    assert "pan" not in result.stages["imagery"].done and len(result.stages["imagery"].done) == 2
    result = run_pipeline(_ray_config(dataset, out, max_retries=0))
    assert not result.failed and result.stages["imagery"].done == ["pan"]
    assert sorted(result.stages["imagery"].reused) == ["forward", "truck"]
    assert _tree(out) == _tree(local)
    for stage in ("frames", "segment", "camera-qa", "object-qa"):  # nothing upstream ran twice
        items = [r["item"] for r in read_jsonl(out / "manifests" / f"{stage}.jsonl")]
        assert len(items) == len(set(items)) == 3
    imagery = [(r["item"], r["status"]) for r in read_jsonl(out / "manifests" / "imagery.jsonl")]
    assert sorted(imagery) == [("forward", "done"), ("pan", "done"), ("pan", "failed"), ("truck", "done")]
    ids = [r["id"] for r in read_jsonl(out / "export" / "dift.jsonl")]
    assert len(ids) == len(set(ids))


def test_segment_actor_restarts_after_its_worker_died(local_ray, world, tmp_path, monkeypatch):
    """An actor whose process died is restarted (its model loaded again) and the item retried, in the same run."""
    dataset, local = world
    marker, original = tmp_path / "crashed", pipeline.segment_clip

    def crash_once(clip, *args, **kwargs):
        if clip["clip_id"] == "truck" and not marker.exists():
            marker.touch()
            os._exit(1)
        return original(clip, *args, **kwargs)

    monkeypatch.setattr(pipeline, "segment_clip", crash_once)
    out = tmp_path / "ray"
    result = run_pipeline(_ray_config(dataset, out, stages=["frames", "segment"], max_retries=1, segment_actors=2))
    assert marker.exists() and not result.failed and sorted(result.stages["segment"].done) == ["forward", "pan", "truck"]
    assert all((out / "masks" / f"{c}.npz").read_bytes() == (local / "masks" / f"{c}.npz").read_bytes()
               for c in SPECS)


def test_failed_actor_setup_stops_the_stage(local_ray, world, tmp_path, monkeypatch):
    """A model that cannot load stops the stage before any item, as locally (no clip recorded failed)."""
    dataset, _ = world

    def no_model(config):
        raise OSError("no checkpoint")

    monkeypatch.setattr(pipeline, "get_segmenter", no_model)
    config = _ray_config(dataset, tmp_path / "ray", stages=["frames", "segment"])
    pipeline.run_frames(config)
    with pytest.raises(RuntimeError, match="(?s)segment: its Ray workers could not start: .*OSError: no checkpoint"):
        pipeline.run_segment(config)
    assert not (tmp_path / "ray" / "manifests" / "segment.jsonl").exists()


def test_ray_without_ray_installed_names_the_extra(dataset, tmp_path):
    """``--ray`` where ``ray`` cannot be imported: one line naming the extra, before any stage runs."""
    code = ("import sys; sys.modules['ray'] = None\nfrom datagen.cli import main\n"
            f"main(['run', '--input_root', {str(dataset)!r}, '--output_dir', {str(tmp_path / 'out')!r}, '--ray'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ)
    assert proc.returncode != 0 and "pip install 'trl-latent[ray]'" in proc.stderr
    assert not (tmp_path / "out" / "manifests").exists()


def test_ray_flag_and_section_are_checked(dataset, tmp_path):
    base = ["run", "--input_root", str(dataset), "--output_dir", str(tmp_path)]
    config = cli_config(build_parser().parse_args([*base, "--ray", "ray://head:10001"]))
    assert config.ray.enabled and config.ray.address == "ray://head:10001"
    config = cli_config(build_parser().parse_args([*base, "--ray", "--set", "ray.segment_gpus=1"]))
    assert config.ray.enabled and config.ray.address is None and config.ray.segment_gpus == 1.0
    assert not cli_config(build_parser().parse_args(base)).ray.enabled
    with pytest.raises(ValueError, match=r"ray\.segment_actors=0: expected a value >= 1"):
        DatagenConfig.from_dict({"input_root": str(dataset), "output_dir": str(tmp_path), "ray": {"segment_actors": 0}})
