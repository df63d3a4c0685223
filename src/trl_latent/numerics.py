"""Pinned CPU numerics: the same quickstart command gives the same numbers on any x86-64 machine with AVX2.

A CPU run is bit-for-bit repeatable on one machine (every stage is seeded), but not across machines: the float
rounding of a forward/backward pass depends on

* the **thread count** (torch's intra-op reductions and oneDNN's convolutions split their work per thread, and the
  partial sums are added in another order; MKL's GEMM too unless its strict mode is on),
* **torch's CPU capability** (its vectorised kernels — softmax, norms, reductions, ``exp`` — are compiled for
  ``default``/AVX2/AVX-512 and picked at run time; each width adds in a different order),
* **MKL's code path** (AVX2 or AVX-512 GEMM kernels, picked by the CPU) and **oneDNN's ISA** (the vision tower's
  patch-embedding convolution).

A run of the quickstart samples rollouts and takes hundreds of optimizer steps, so a difference in the last bit of
one logit grows into different sampled tokens and a different model: measured on the default preset, two machines
gave DIFT + 4DRL 82.4% and 67.2% for the same command. :func:`pin_numerics` fixes all four before the first tensor
operation of the run: ``torch.set_num_threads`` and three environment variables that torch, MKL and oneDNN read
lazily at their first use (verified on torch 2.14: setting them after ``import torch`` but before any operation
takes effect), so an AVX-512 machine computes with the AVX2 kernels this project's numbers were measured with.
On a CPU without AVX2 (or not x86) torch and the libraries fall back to what the CPU has, and the numbers may
differ; :func:`numerics_record` says what was in effect, and the report records it.
"""

from __future__ import annotations

import os
from typing import Any

import torch

PINNED_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
"""torch's kernel dispatch, MKL's conditional numerical reproducibility branch and oneDNN's highest ISA: AVX2, the
widest that every x86-64 CPU of the last decade (Intel and AMD) runs, so faster CPUs compute like slower ones."""


def pin_numerics(threads: int, pin: bool = True) -> dict[str, Any]:
    """Fix the thread count (``threads`` > 0) and, with ``pin``, the kernels of :data:`PINNED_ENV`; returns
    :func:`numerics_record`. Call before the process's first tensor operation: torch fixes its CPU capability and
    MKL and oneDNN their code paths at first use, after which the environment variables no longer change them."""
    if pin:
        os.environ.update(PINNED_ENV)
    if threads > 0:
        torch.set_num_threads(threads)
    return numerics_record()


def numerics_record() -> dict[str, Any]:
    """What decides the numbers of this process: threads, the CPU capability torch dispatches to (read back from
    torch, so a pin that came too late shows), the variables of :data:`PINNED_ENV` and the library versions."""
    return {
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "env": {name: os.environ.get(name) for name in PINNED_ENV},
        "torch": torch.__version__,
        "mkl": torch.backends.mkl.is_available(),
        "onednn": torch.backends.mkldnn.is_available(),
    }
