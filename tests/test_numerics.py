"""Pinned CPU numerics: what differs between machines (threads, torch's CPU capability) changes the bits of a
forward/backward pass, and :func:`pin_numerics` (called after ``import torch``, as the quickstart does) removes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from trl_latent.numerics import PINNED_ENV

WORKLOAD = """
import hashlib, json, sys, torch
from trl_latent.numerics import pin_numerics, numerics_record
record = pin_numerics(2) if sys.argv[1] == "pin" else numerics_record()
torch.manual_seed(0)
x = torch.randn(16, 200, 64)
lin, norm = torch.nn.Linear(64, 512), torch.nn.LayerNorm(512)
y = torch.softmax(norm(lin(x)), -1)
y.pow(2).sum().backward()
data = b"".join(t.detach().contiguous().numpy().tobytes() for t in (y, lin.weight.grad))
print(json.dumps({**record, "hash": hashlib.sha256(data).hexdigest()}))
"""


def _run(mode: str, threads: str, capability: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": threads, "ATEN_CPU_CAPABILITY": capability}
    for name in ("MKL_CBWR", "ONEDNN_MAX_CPU_ISA"):
        env.pop(name, None)
    out = subprocess.run([sys.executable, "-c", WORKLOAD, mode], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_machine_differences_change_the_numbers_unless_pinned():
    """Two "machines": one thread without SIMD kernels, two threads with AVX2 (this project's reference CPU)."""
    slow, fast = _run("none", "1", "default"), _run("none", "2", "avx2")
    assert (slow["threads"], fast["threads"]) == (1, 2)
    if fast["cpu_capability"] == "DEFAULT":  # a CPU without AVX2 (or not x86): nothing to pin to
        return
    assert slow["hash"] != fast["hash"]  # the bits differ: sampled rollouts and training diverge from there
    pinned = [_run("pin", "1", "default"), _run("pin", "2", "avx2")]
    assert all(p["threads"] == 2 and p["cpu_capability"] == "AVX2" and p["env"] == PINNED_ENV for p in pinned)
    assert pinned[0]["hash"] == pinned[1]["hash"]
