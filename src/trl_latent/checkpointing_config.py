"""The activation-checkpointing default of TRL's configs, under the name transformers keeps.

TRL 1.16 sets ``gradient_checkpointing=True`` by default; transformers 5.24 renamed that argument to
``activation_checkpointing`` and warns on every config built with the old one set (removal in v6), so each stock
``SFTConfig()`` / ``GRPOConfig()`` warns. Our configs inherit this mixin first: the old name defaults to unset, and
when neither name is given the new one takes TRL's default (on). A recipe that still sets ``gradient_checkpointing``
is honoured, with transformers' warning. Our recipes use ``activation_checkpointing``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ActivationCheckpointingDefault:
    activation_checkpointing: bool | None = field(
        default=None,
        metadata={"help": "Enable activation (gradient) checkpointing to trade compute for memory (default: on, "
                          "as TRL's configs)."},
    )
    gradient_checkpointing: bool | None = field(
        default=None,
        metadata={"help": "Deprecated alias of `activation_checkpointing` (removed in transformers v6)."},
    )

    def __post_init__(self) -> None:
        if self.activation_checkpointing is None and self.gradient_checkpointing is None:
            self.activation_checkpointing = True
        super().__post_init__()
