"""benchmarks/gpu_check.py at tiny size on CPU: it runs end to end and writes a consistent JSON and markdown table."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_check(out: Path, *extra: str) -> tuple[dict, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")]), HF_HUB_OFFLINE="1")
    command = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--size", "tiny", "--out", str(out), *extra]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads((out / "gpu_check.json").read_text()), (out / "gpu_check.md").read_text()


def positive(value) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def full_check(tmp_path_factory) -> tuple[dict, str]:
    """Every check in one run (one interpreter start and one tiny model build for all tests of this module)."""
    return run_check(tmp_path_factory.mktemp("gpu_check"))


def test_tiny_check_writes_every_measure(full_check):
    results, table = full_check
    assert results["size"] == "tiny" and results["attention"] == "sdpa" and results["transformers"]
    assert set(results["dift"]) == {"batch_1", "batch_2"}
    for batch, variants in results["dift"].items():
        names = {"stock", "teacher", "self"} | ({"teacher_packed"} if batch == "batch_2" else set())
        assert names <= set(variants)
        for name in names:
            dift = variants[name]
            assert "error" not in dift, dift.get("error")
            assert positive(dift["step_s"]) and positive(dift["step_tflop"]) and positive(dift["peak_memory_mib"])
            assert dift["tokens"] > 0 and dift["mfu"] is None  # no known peak on a CPU: left empty, not guessed
            assert dift["step_tflop"] == variants["stock"]["step_tflop"]  # the same model math for every variant
            if name != "stock":
                assert positive(dift["fed_back_norm_ratio"])
                assert dift["over_stock"] == pytest.approx(dift["step_s"] / variants["stock"]["step_s"])
        assert variants["self_over_teacher"] == pytest.approx(variants["self"]["step_s"] / variants["teacher"]["step_s"])
    assert results["dift"]["batch_2"]["stock"]["padded_tokens"] > results["dift"]["batch_2"]["stock"]["tokens"]
    assert set(results["generate"]) == {"batch_1", "batch_4"}
    for gen in results["generate"].values():
        assert "error" not in gen, gen.get("error")
        assert positive(gen["hf_tokens_per_s"]) and positive(gen["latent_tokens_per_s"])
        assert positive(gen["latent_static_tokens_per_s"]) and gen["cuda_graph"] is False  # no CUDA here
        assert gen["ratio"] == pytest.approx(gen["latent_tokens_per_s"] / gen["hf_tokens_per_s"])
    assert positive(results["grpo"]["stock_step_s"]) and positive(results["grpo"]["latent_step_s"])

    lines = table.splitlines()
    assert lines[0].startswith("Device: cpu") and "size tiny" in lines[0]
    rows = [line for line in lines if line.startswith("| ")][1:]  # the header row dropped
    checks = {row.split(" | ")[0].lstrip("| ") for row in rows}
    dift_rows = {f"DIFT batch {b}, {label}" for b in (1, 2) for label in ("stock SFTTrainer", "teacher", "self")}
    assert checks == dift_rows | {"DIFT batch 2, teacher, padding-free", "DIFT batch 1", "DIFT batch 2",
                                  "rollout, batch 1", "rollout, batch 4", "GRPO step"} | {
        f"DIFT step ({mode}), DeepSpeed ZeRO-2 (1 process)" for mode in ("teacher", "self")}
    teacher = results["dift"]["batch_1"]["teacher"]
    assert f"| DIFT batch 1, teacher | step time (s), over stock | {teacher['step_s']:.3g}, " in table
    assert "/ – |" in table  # the MFU cell on CPU


@pytest.mark.slow
def test_zero2_step_runs_under_deepspeed(full_check):
    """The ZeRO-2 check (its first run on a machine compiles DeepSpeed's CPU communication op, ~1 min)."""
    results, table = full_check
    for mode in ("teacher", "self"):  # self mode: the block-by-block forward under a DeepSpeedEngine
        zero2 = results["zero2"][mode]
        assert zero2["engine"] == "DeepSpeedEngine" and zero2["steps"] == 2  # tiny: one warm-up and one timed step
        assert positive(zero2["step_s"]) and positive(zero2["peak_memory_mib"]) and math.isfinite(zero2["first_loss"])
        assert f"| DIFT step ({mode}), DeepSpeed ZeRO-2 (1 process) | step time (s) |" in table


def test_skipped_checks_are_left_out(tmp_path, monkeypatch, capsys):
    """``--skip`` in process (torch is loaded already): with every check skipped nothing runs and none is reported;
    an unknown name is refused."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import gpu_check

    monkeypatch.setattr(sys, "argv", ["gpu_check.py", "--size", "tiny", "--out", str(tmp_path),
                                      "--skip", ",".join(gpu_check.CHECKS)])
    assert gpu_check.main() == 0
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    assert results["size"] == "tiny" and not set(gpu_check.CHECKS) & set(results)
    monkeypatch.setattr(sys, "argv", ["gpu_check.py", "--skip", "zero3"])
    with pytest.raises(SystemExit):
        gpu_check.main()
    assert "--skip takes checks among" in capsys.readouterr().err
