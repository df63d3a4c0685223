"""Model cards for latent-imagery checkpoints, on top of TRL's own model-card mechanism.

TRL's ``_BaseTrainer.create_model_card`` renders its template (base model, framework versions, the trainer's
citation from ``_paper``) into ``<output_dir>/README.md``. A latent checkpoint needs more than that to be usable: it
cannot be decoded with ``generate`` (the latent loop is ours), and its K and losses define what it learned. The
:class:`LatentModelCardMixin` keeps TRL's card and edits three parts of it: the base model (TRL writes "[None]" for a
local checkpoint; here a local checkpoint's own card is followed to the Hub model it came from, else it is named by
its folder), the quick start (``generate_with_latents`` on a video sampled as in training, instead of a
text-generation pipeline that cannot run a latent block), and a "Thinking with 4D imagery" section before the
citations. No absolute local path is written: data files and checkpoints are named by their file or folder name. It
also writes the card on ``save_model`` (TRL only does so for checkpoints and ``push_to_hub``).

Use it first in the bases of a TRL trainer and implement ``latent_card_details``::

    class LatentGRPOTrainer(LatentModelCardMixin, GRPOTrainer):
        def latent_card_details(self) -> dict[str, str]:
            return {"Method": "4DRL (GRPO with latent rollouts)", **latent_spec_details(self.model), ...}
"""

from __future__ import annotations

import re
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
    "as the next input embedding. Use `trl_latent.generation.generate_with_latents` (or the `latent_vlm` "
    "lmms-eval model) with the processor saved next to the weights."
)


def latent_spec_details(model: Any) -> dict[str, str]:
    """The model family, and K, tokens and pooling of a latent model, for the card."""
    from .models import adapter_for

    family = {"Model family": adapter_for(model).family}
    spec = get_latent_spec(model)
    if spec is None:
        return family
    return {
        **family,
        "Latent size K": str(spec.latent_size),
        "Latent block": f"`{LATENT_START}` + {spec.latent_size} × `{LATENT_PAD}` + `{LATENT_END}`",
        "Imagery pooling": f"{spec.compress_strategy} of the frozen vision tower's merged tokens in K groups",
    }


def data_sources(dataset: Any) -> list[str]:
    """Names of the files a normalised record dataset came from (its ``source`` column, ``/dir/file:line`` →
    ``file``), in order; only names, so that no local path reaches a card."""
    if dataset is None or "source" not in getattr(dataset, "column_names", ()):
        return []
    files: dict[str, None] = {}
    for source in dataset["source"]:
        files.setdefault(Path(source.rsplit(":", 1)[0]).name, None)
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


def base_model_of(name_or_path: str | None) -> tuple[str | None, str]:
    """``(Hub id of the base model or None, the sentence's markdown naming it)`` for a model loaded from
    ``name_or_path``. A local checkpoint is followed through its own card's ``base_model`` (so DIFT → 4DRL → … still
    names the Hub model at the root); without one it is named by its folder, never by its absolute path."""
    if not name_or_path:
        return None, "a model built in memory"
    path = Path(name_or_path)
    if not path.is_dir():
        return name_or_path, f"[{name_or_path}](https://huggingface.co/{name_or_path})"
    base = None
    if (path / "README.md").is_file():
        from huggingface_hub import ModelCard

        base = ModelCard.load(path / "README.md").data.get("base_model")
        base = base[0] if isinstance(base, list) and base else base
    if base:
        return base, f"[{base}](https://huggingface.co/{base}) (through the local checkpoint `{path.name}`)"
    return None, f"a local checkpoint, `{path.name}`"


def quick_start(model_id: str, visual: VisualOptions) -> str:
    """The card's "Quick start": a video question answered with ``generate_with_latents``, the video sampled as in
    training (TRL's ``pipeline("text-generation")`` would stop at the first latent block)."""
    return f'''## Quick start

```python
from transformers import AutoModelForImageTextToText, AutoProcessor

from trl_latent import generate_with_latents
from trl_latent.data import VisualOptions, build_prompt, load_visual

model_id = "{model_id}"
model = AutoModelForImageTextToText.from_pretrained(model_id, device_map="auto").eval()
processor = AutoProcessor.from_pretrained(model_id)

# the video is sampled as in training
options = VisualOptions(fps={visual.fps}, max_frames={visual.max_frames},
                        min_pixels={visual.min_pixels}, max_pixels={visual.max_pixels})
video = load_visual({{"video": "clip.mp4"}}, options)
question = "Which way does the red sphere move?\\nA. left\\nB. right\\nC. up\\nD. down"
messages = [{{"role": "user", "content": [{{"type": "video"}}, {{"type": "text", "text": build_prompt(question)}}]}}]
inputs = processor(
    text=[processor.apply_chat_template(messages, add_generation_prompt=True)], videos=[video.frames],
    videos_kwargs={{"video_metadata": [video.video_metadata], "do_sample_frames": False}}, return_tensors="pt",
).to(model.device)
output = generate_with_latents(model, **inputs, max_new_tokens=512)  # latent blocks are run, not decoded as text
print(processor.decode(output.completion_ids[0], skip_special_tokens=True))
```

'''


_FINE_TUNED = re.compile(r"This model is a fine-tuned version of \[[^\]]*\]\([^)]*\)")
_QUICK_START = re.compile(r"## Quick start\n.*?(?=## )", re.DOTALL)


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
        from huggingface_hub import ModelCard

        tags = [tags] if isinstance(tags, str) else list(tags or [])
        if dataset_name and Path(dataset_name).exists():  # a local file is no Hub dataset; the section names it
            dataset_name = None
        super().create_model_card(model_name=model_name, dataset_name=dataset_name, tags=[*tags, *CARD_TAGS])
        if not self.is_world_process_zero():
            return
        readme = Path(self.args.output_dir) / "README.md"
        card = ModelCard.load(readme)
        base, named = base_model_of(getattr(self.model.config, "_name_or_path", None))
        if base:
            card.data.base_model = base
        model_id = self.hub_model_id or model_name or Path(self.args.output_dir).name
        text = _FINE_TUNED.sub(lambda _: f"This model is a fine-tuned version of {named}", card.text, count=1)
        text = _QUICK_START.sub(lambda _: quick_start(model_id, self.args.visual_options), text, count=1)
        card.text = insert_section(text, render_section(self.latent_card_details()))
        card.save(readme)

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
