"""Raw video with camera annotations (or the synthetic 4D world) → DIFT and 4DRL training data.

Stages: ``frames`` → ``segment`` → ``camera-qa`` / ``object-qa`` → ``imagery`` → ``cot`` → ``export`` → ``validate``;
each is a ``trl-latent-datagen`` sub-command and a ``run_<stage>(config)`` function. :func:`run_pipeline` runs them
all; see docs/datagen.md.
"""

from .config import STAGES, DatagenConfig
from .pipeline import run_pipeline

__all__ = ["STAGES", "DatagenConfig", "run_pipeline"]
