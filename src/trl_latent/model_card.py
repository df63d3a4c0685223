"""Model cards for latent-imagery checkpoints, on top of TRL's own model-card mechanism.

TRL's ``_BaseTrainer.create_model_card`` renders its template (base model, framework versions, the trainer's
citation from ``_paper``) into ``<output_dir>/README.md``. A latent checkpoint needs more than that to be usable: it
cannot be decoded with ``generate`` (the latent loop is ours), and its K and losses define what it learned. The
:class:`LatentModelCardMixin` keeps TRL's card and inserts a "Thinking with 4D imagery" section before its citations;
it also writes the card on ``save_model`` (TRL only does so for checkpoints and ``push_to_hub``).

Use it first in the bases of a TRL trainer and implement ``latent_card_details``::

    class LatentGRPOTrainer(LatentModelCardMixin, GRPOTrainer):
        def latent_card_details(self) -> dict[str, str]:
            return {"Method": "4DRL (GRPO with latent rollouts)", **latent_spec_details(self.model), ...}
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .tokens import LATENT_END, LATENT_PAD, LATENT_START, get_latent_spec

if TYPE_CHECKING:
    from .data import VisualOptions

SECTION_TITLE = "## Thinking with 4D imagery"
CARD_TAGS = ("trl-latent", "latent-reasoning", "4dthinker")
INFERENCE_NOTE = (
    "Latent blocks cannot be decoded with `model.generate`: inside a block the model's last hidden state is fed back "
    "as the next input embedding. Use `trl_latent.generation.generate_with_latents` (or the `latent_qwen2_5_vl` "
    "lmms-eval model) with the processor saved next to the weights."
)


def latent_spec_details(model: Any) -> dict[str, str]:
    """K, tokens and pooling of a latent model, for the card; empty for a model without latent tokens."""
    spec = get_latent_spec(model)
    if spec is None:
        return {}
    return {
        "Latent size K": str(spec.latent_size),
        "Latent block": f"`{LATENT_START}` + {spec.latent_size} × `{LATENT_PAD}` + `{LATENT_END}`",
        "Imagery pooling": f"{spec.compress_strategy} of the frozen vision tower's merged tokens in K groups",
    }


def data_sources(dataset: Any) -> list[str]:
    """Files a normalised record dataset came from (its ``source`` column, ``file:line`` → ``file``), in order."""
    if dataset is None or "source" not in getattr(dataset, "column_names", ()):
        return []
    files: dict[str, None] = {}
    for source in dataset["source"]:
        files.setdefault(source.rsplit(":", 1)[0], None)
    return list(files)


def training_data_details(dataset: Any, visual: VisualOptions) -> dict[str, str]:
    """The card rows every latent trainer has: where its training records came from and how their videos were read.

    One function so that the DIFT and 4DRL cards describe their data the same way (both read records from
    :func:`trl_latent.data.load_records` and decode visuals with the config's ``visual_options``).
    """
    sources = data_sources(dataset)
    return {
        "Training data": ", ".join(f"`{s}`" for s in sources) if sources else "in-memory dataset",
        "Video sampling": f"{visual.fps} fps, at most {visual.max_frames} frames, "
                          f"{visual.min_pixels}–{visual.max_pixels} pixels per frame",
    }


def render_section(details: Mapping[str, str]) -> str:
    """The markdown section: a two-column table of ``details`` and the note on latent decoding."""
    rows = "\n".join(f"| {key} | {value} |" for key, value in details.items())
    return f"{SECTION_TITLE}\n\n| | |\n|---|---|\n{rows}\n\n{INFERENCE_NOTE}\n"


def insert_section(card_text: str, section: str) -> str:
    """Put ``section`` before the card's "## Citations" (at the end when there is none); replace an older one."""
    if SECTION_TITLE in card_text:
        start = card_text.index(SECTION_TITLE)
        end = card_text.find("\n## ", start + len(SECTION_TITLE))
        card_text = card_text[:start] + (card_text[end + 1 :] if end != -1 else "")
    anchor = card_text.find("## Citations")
    if anchor == -1:
        return card_text.rstrip("\n") + "\n\n" + section
    return card_text[:anchor] + section + "\n" + card_text[anchor:]


class LatentModelCardMixin:
    """Adds the latent section to TRL's model card and writes the card on every ``save_model``."""

    def latent_card_details(self) -> dict[str, str]:
        raise NotImplementedError(f"{type(self).__name__} must say what goes into its model card")

    def create_model_card(
        self, model_name: str | None = None, dataset_name: str | None = None, tags: str | Iterable[str] | None = None
    ) -> None:
        tags = [tags] if isinstance(tags, str) else list(tags or [])
        super().create_model_card(model_name=model_name, dataset_name=dataset_name, tags=[*tags, *CARD_TAGS])
        if not self.is_world_process_zero():
            return
        readme = Path(self.args.output_dir) / "README.md"
        readme.write_text(insert_section(readme.read_text(encoding="utf-8"), render_section(self.latent_card_details())),
                          encoding="utf-8")

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        super().save_model(output_dir, _internal_call)
        if _internal_call:  # checkpoints and push_to_hub already write the card themselves
            return
        model_name = Path(output_dir or self.args.output_dir).name
        self.create_model_card(model_name=model_name)
        if self.is_world_process_zero() and output_dir is not None:
            source, target = Path(self.args.output_dir) / "README.md", Path(output_dir) / "README.md"
            if source.resolve() != target.resolve():
                shutil.copyfile(source, target)
