"""The activation-checkpointing default of TRL's configs, under the name transformers keeps.

TRL 1.16 sets ``gradient_checkpointing=True`` by default; transformers 5.24 renamed that argument to
``activation_checkpointing`` and warns on every config built with the old one set (removal in v6), so each stock
``SFTConfig()`` / ``GRPOConfig()`` warns. Our configs inherit this mixin first: the same default (checkpointing on),
set through the new name, the old one left unset. Recipes use ``activation_checkpointing`` too.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ActivationCheckpointingDefault:
    activation_checkpointing: bool | None = field(
        default=True,
        metadata={"help": "Enable activation (gradient) checkpointing to trade compute for memory (TRL's default: on)."},
    )
    gradient_checkpointing: bool | None = field(
        default=None,
        metadata={"help": "Deprecated alias of `activation_checkpointing` (removed in transformers v6)."},
    )
