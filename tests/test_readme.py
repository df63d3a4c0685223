"""The README's Use block runs as written, top to bottom, on a fresh folder (a new user's first commands)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def use_block() -> str:
    """The first ```bash block under the README's ``## Use`` heading."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Use", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert found, "README.md: no ```bash block under ## Use"
    return found.group(1)


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("model_type", [None, "qwen3_vl"])
def test_readme_use_block_runs_as_written(tmp_path, model_type):
    """As written, and with ``--model_type qwen3_vl`` given to ``init-tiny`` (the rest of the block unchanged)."""
    (tmp_path / "examples").symlink_to(REPO / "examples")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    block = use_block()
    if model_type:
        assert "trl-latent init-tiny outputs/" in block
        block = block.replace("trl-latent init-tiny outputs/", f"trl-latent init-tiny --model_type {model_type} outputs/")
    script = "set -euxo pipefail\n" + block
    run = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, f"README Use block failed (exit {run.returncode}):\n{run.stderr[-6000:]}"
    # each stage wrote what the next one reads, and both evaluations printed a score table
    for path in ("outputs/tiny-qwen2.5-vl/config.json", "data/synth_out/export/dift.jsonl",
                 "data/synth_out/export/rl.jsonl", "data/synth_out/export/benchmark/benchmark.parquet",
                 "outputs/dift-tiny/config.json", "outputs/4drl-tiny/config.json", "outputs/eval/summary.json"):
        assert (tmp_path / path).is_file(), path
    assert "dsr_bench_think" in run.stdout and "|dsr_bench" in run.stdout.replace(" ", "")
    config = json.loads((tmp_path / "outputs/4drl-tiny/config.json").read_text())
    assert config["model_type"] == (model_type or "qwen2_5_vl")
