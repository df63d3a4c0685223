"""The lock (requirements/lock.txt) must match pyproject.toml: what setup_env.sh installs is what the package declares."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "requirements" / "lock.txt"


def _locked() -> dict[str, str]:
    pins = {}
    for number, line in enumerate(LOCK.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep and version, f"{LOCK}:{number}: {line!r} is not pinned with =="
        pins[canonicalize_name(name)] = version.strip()
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines += extra
    return [Requirement(line) for line in lines]


def test_every_declared_dependency_is_locked_inside_its_range():
    pins = _locked()
    problems = []
    for requirement in _declared():
        version = pins.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{requirement} is not in the lock")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement} but the lock pins {version}")
    assert not problems, "requirements/lock.txt is stale; run `bash scripts/lock.sh`:\n" + "\n".join(problems)


def test_lock_pins_the_default_torch_pair():
    pins = _locked()
    default = subprocess.run(
        ["bash", "-c", f"unset TRL_LATENT_TORCH; source {REPO}/scripts/_uv.sh; echo $torch_spec"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    for requirement in map(Requirement, default):
        assert requirement.specifier.contains(pins[canonicalize_name(requirement.name)]), requirement


@pytest.mark.parametrize("name", ["torch", "torchvision", "triton", "nvidia-cublas", "cuda-pathfinder"])
def test_own_torch_pair_drops_only_the_torch_closure(name):
    kept = subprocess.run(
        ["bash", "-c", f"source {REPO}/scripts/_uv.sh; lock_without_torch {LOCK}"],
        capture_output=True, text=True, check=True,
    ).stdout
    kept_names = {canonicalize_name(line.split("==")[0]) for line in kept.splitlines() if "==" in line}
    assert canonicalize_name(name) not in kept_names
    assert {"transformers", "trl", "lmms-eval", "filelock"} <= kept_names
