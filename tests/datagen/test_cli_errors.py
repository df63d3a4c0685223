"""User mistakes through the ``trl-latent-datagen`` door end in one line naming the problem; ``--debug`` or
``TRL_LATENT_DEBUG=1`` brings the traceback back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from datagen import cli
from datagen.layout import REQUIRED_COLUMNS


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TRL_LATENT_DEBUG": "", **(env or {})})


def _header_only(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "metadata.csv").write_text(",".join(REQUIRED_COLUMNS) + "\n")
    return root / "metadata.csv"


def test_header_only_metadata_is_one_line_naming_the_file(tmp_path):
    """It used to exit 0 with 0 records."""
    metadata = _header_only(tmp_path / "data")
    proc = _run("-m", "datagen.cli", "run", "--input_root", str(tmp_path / "data"), "--output_dir",
                str(tmp_path / "out"))
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip() == (f"trl-latent-datagen run: {metadata}: no clip rows, only the header (add one row "
                                   "per video, e.g. with trl-latent-datagen index ROOT) [traceback: TRL_LATENT_DEBUG=1]")


def test_index_on_an_empty_videos_folder_is_one_line(tmp_path):
    (tmp_path / "videos").mkdir()
    for command, prefix in ((["-m", "datagen.annotate.index"], "datagen.annotate.index"),
                            (["-m", "datagen.cli", "index"], "trl-latent-datagen index")):
        proc = _run(*command, str(tmp_path))
        assert proc.returncode == 1
        assert proc.stderr.strip() == (f"{prefix}: {tmp_path / 'videos'}: no .mp4/.mov/.avi/.mkv/.webm files "
                                       "[traceback: TRL_LATENT_DEBUG=1]")
    proc = _run("-m", "datagen.annotate.index", str(tmp_path / "nowhere"))
    assert "(the folder does not exist)" in proc.stderr and "Traceback" not in proc.stderr
    proc = _run("-m", "datagen.annotate.index", str(tmp_path), env={"TRL_LATENT_DEBUG": "1"})
    assert "Traceback" in proc.stderr and "FileNotFoundError" in proc.stderr


def test_debug_flag_and_variable_show_the_traceback(tmp_path, monkeypatch):
    _header_only(tmp_path / "data")
    args = ["run", "--input_root", str(tmp_path / "data"), "--output_dir", str(tmp_path / "out")]
    monkeypatch.delenv("TRL_LATENT_DEBUG", raising=False)
    with pytest.raises(SystemExit, match="only the header"):
        cli.main(args)
    with pytest.raises(ValueError, match="only the header"):
        cli.main(["--debug", *args])
    monkeypatch.setenv("TRL_LATENT_DEBUG", "1")
    with pytest.raises(ValueError, match="only the header"):
        cli.main(args)


def test_ray_start_failure_is_one_line_with_what_to_try(dataset, tmp_path, monkeypatch):
    """Ray's own error when a loaded machine cannot start a local node in time (ray/_private/node.py)."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("a Ray instance is already running in this process")

    def timed_out(*args, **kwargs):
        raise Exception("The current node timed out during startup. This could happen because some of the raylet "
                        "failed to startup or the GCS has become overloaded.")

    monkeypatch.setattr(ray, "init", timed_out)
    monkeypatch.delenv("TRL_LATENT_DEBUG", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    args = ["run", "--input_root", str(dataset), "--output_dir", str(tmp_path / "out"), "--ray", "--set",
            "stages=[frames]"]
    with pytest.raises(SystemExit) as error:
        cli.main(args)
    message = str(error.value)
    assert "\n" not in message and message.startswith("trl-latent-datagen run: a local Ray instance did not start: "
                                                      "The current node timed out during startup.")
    assert "--set ray.num_cpus=1" in message and "ray stop" in message and "--ray auto" in message
    with pytest.raises(SystemExit, match=r"could not join the Ray cluster at 'head:6379'.*ray status"):
        cli.main([*args[:-2], "head:6379", "--set", "stages=[frames]"])
    with pytest.raises(RuntimeError, match="did not start") as error:
        cli.main(["--debug", *args])
    assert "timed out during startup" in str(error.value.__cause__)  # the traceback keeps Ray's own error
