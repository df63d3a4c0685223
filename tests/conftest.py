"""Shared offline fixtures: a tiny random Qwen2.5-VL with latent tokens, its processor, and small inputs; the same per
supported family (``family_tiny``) for the tests every family must pass."""

from __future__ import annotations

import copy
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest
import torch

from trl_latent.models import FAMILIES
from trl_latent.testing import build_processor, build_tiny, build_tiny_qwen2_5_vl

pytest_plugins = ["deprecations"]  # fail tests whose code path calls an API a dependency will remove


@pytest.fixture(scope="session")
def processor_session():
    return build_processor()


@pytest.fixture(scope="session")
def tiny_session(processor_session):
    return build_tiny_qwen2_5_vl(latent_size=4, seed=0, processor=copy.deepcopy(processor_session))


@pytest.fixture
def tiny(tiny_session):
    """A fresh copy per test, so tests may train or edit it."""
    model, processor = tiny_session
    return copy.deepcopy(model), copy.deepcopy(processor)


@pytest.fixture
def stock_tiny(processor_session):
    """The same architecture without latent tokens (a stock checkpoint)."""
    return build_tiny_qwen2_5_vl(latent_size=None, seed=0, processor=copy.deepcopy(processor_session))


@pytest.fixture(scope="session", params=FAMILIES)
def family_session(request):
    """A tiny random model with latent tokens and its processor, once per supported family."""
    return build_tiny(request.param, latent_size=4, seed=0)


@pytest.fixture
def family_tiny(family_session):
    """A fresh copy of :func:`family_session` per test."""
    model, processor = family_session
    return copy.deepcopy(model), copy.deepcopy(processor)
