"""Hub-grade model cards for latent-imagery checkpoints, built with ``huggingface_hub``'s ModelCard / ModelCardData.

TRL's ``_BaseTrainer.create_model_card`` renders a template that leaves a local base model out, sets no datasets,
writes ``licence: license`` (a placeholder key the Hub does not read), leaves "Training procedure" empty, and for
GRPO cites DeepSeekMath as if it were the trainer's own paper. A latent checkpoint needs more to be usable: it cannot
be decoded with ``generate`` (the latent loop is ours), and its K and losses define what it learned. So
:class:`LatentModelCardMixin` builds the whole card itself: metadata (``base_model`` followed through local
checkpoints to the Hub model at the root, ``datasets`` when they are Hub ids, ``library_name``, ``pipeline_tag``,
``tags``, the license inherited from the parent's card, ``model-index`` eval results when the trainer evaluated), a
quick start with ``generate_with_latents``, the method table, the hyperparameters and final metrics, and the
citations: 4DThinker for the method, the algorithm's paper (GRPO, for 4DRL) and TRL. No absolute local path is
written: data files and checkpoints are named by their file or folder name.

A card is written only next to weights: on ``save_model`` (TRL does so only for checkpoints and ``push_to_hub``),
into each ``checkpoint-N`` folder, and into ``output_dir`` only once it holds a model (an interrupted run used to
leave a README.md describing weights that were never saved).

Use it first in the bases of a TRL trainer and implement ``latent_card_details``::

    class LatentGRPOTrainer(LatentModelCardMixin, GRPOTrainer):
        card_algorithm = "GRPO"  # cite the TRL trainer's ``_paper`` as the algorithm

        def latent_card_details(self) -> dict[str, str]:
            return {"Method": "4DRL (GRPO with latent rollouts)", **latent_spec_details(self.model), ...}
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .citations import CITATION_4DTHINKER, CITATION_TRL
from .tokens import LATENT_END, LATENT_PAD, LATENT_START, LatentSpec, get_latent_spec

if TYPE_CHECKING:
    from .data import VisualOptions

SECTION_TITLE = "## Thinking with 4D imagery"
CARD_TAGS = ("trl", "trl-latent", "latent-reasoning", "4dthinker", "video-question-answering")
# Qwen2.5-VL answers questions about videos; the Hub's task for text generated from a video and a prompt
PIPELINE_TAG = "video-text-to-text"
# the keys of a parent checkpoint's card that a fine-tuned card keeps
INHERITED_KEYS = ("base_model", "license", "license_name", "license_link")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
                "adapter_model.safetensors", "adapter_model.bin")
# evaluation keys that are timings, not results
_EVAL_TIMINGS = ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "epoch", "step")
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
        "Fed-back latents": _feedback_description(spec),
    }


def _feedback_description(spec: LatentSpec) -> str:
    """What the checkpoint feeds back at its latent positions (:func:`trl_latent.latents.feedback_vector`)."""
    if spec.feedback_norm is None:
        return "the last hidden state as it is (the release)"
    if spec.feedback_center is None:
        return f"the last hidden state rescaled to norm {spec.feedback_norm:.4g} (the imagery targets' mean)"
    return (f"its slot's mean imagery target plus the last hidden state's deviation from it, rescaled to norm "
            f"{spec.feedback_norm:.4g} (the targets' mean deviation)")


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


def parent_card(name_or_path: str | None) -> dict[str, Any]:
    """The :data:`INHERITED_KEYS` of the card of a local checkpoint (its ``README.md``), empty without one."""
    readme = Path(name_or_path) / "README.md" if name_or_path else None
    if readme is None or not readme.is_file():
        return {}
    from huggingface_hub import ModelCard

    data = ModelCard.load(readme).data
    return {key: data.get(key) for key in INHERITED_KEYS if data.get(key)}


def base_model_of(name_or_path: str | None) -> tuple[str | None, str]:
    """``(Hub id of the base model or None, the sentence's markdown naming it)`` for a model loaded from
    ``name_or_path``. A local checkpoint is followed through its own card's ``base_model`` (so DIFT → 4DRL → … still
    names the Hub model at the root); without one it is named by its folder, never by its absolute path."""
    if not name_or_path:
        return None, "a model built in memory"
    path = Path(name_or_path)
    if not path.is_dir():
        return name_or_path, f"[{name_or_path}](https://huggingface.co/{name_or_path})"
    base = parent_card(name_or_path).get("base_model")
    base = base[0] if isinstance(base, list) and base else base
    if base:
        return base, f"[{base}](https://huggingface.co/{base}) (through the local checkpoint `{path.name}`)"
    return None, f"a local checkpoint, `{path.name}`"


def hub_dataset_ids(*names: str | None) -> list[str]:
    """The names that are Hub dataset ids: not local files or folders (those are named in the card's table)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    ids = []
    for name in names:
        if not name or Path(name).exists():
            continue
        try:
            validate_repo_id(name)
        except HFValidationError:
            continue
        ids.append(name)
    return list(dict.fromkeys(ids))


def has_weights(folder: Path) -> bool:
    return any((folder / name).is_file() for name in WEIGHT_FILES)


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


def render_section(details: Mapping[str, str]) -> str:
    """The markdown section: a two-column table of ``details`` and the note on latent decoding."""
    return f"{SECTION_TITLE}\n\n{table(details)}\n\n{INFERENCE_NOTE}\n"


def table(rows: Mapping[str, Any]) -> str:
    """A two-column markdown table without a header row."""
    return "| | |\n|---|---|\n" + "\n".join(f"| {key} | {value} |" for key, value in rows.items())


def hyperparameters(args: Any, state: Any) -> dict[str, Any]:
    """What a reader needs to rerun the training: the optimisation settings actually used."""
    world = getattr(args, "world_size", 1)
    batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * world
    precision = "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32"
    return {
        "learning_rate": f"{args.learning_rate:g}",
        "lr_scheduler_type": getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type),
        "optimizer": getattr(args.optim, "value", args.optim),
        "per_device_train_batch_size": args.per_device_train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "total_train_batch_size": f"{batch} ({world} process{'es' if world > 1 else ''})",
        "training steps": state.max_steps or "-",
        "seed": args.seed,
        "precision": precision,
    }


def final_metrics(log_history: list[dict[str, Any]]) -> dict[str, str]:
    """The last logged training step's metrics and the run's summary (``train_loss``, runtime), as strings."""
    step = next((entry for entry in reversed(log_history) if "loss" in entry), {})
    summary = next((entry for entry in reversed(log_history) if "train_loss" in entry), {})
    shown = {**{k: v for k, v in step.items() if k not in ("epoch",)}, **summary}
    return {key: f"{value:.4g}" if isinstance(value, float) else str(value) for key, value in shown.items()}


def eval_results(log_history: list[dict[str, Any]], dataset: str) -> list[Any]:
    """``model-index`` results of the trainer's last evaluation (``eval_*`` metrics), empty when it never ran."""
    from huggingface_hub import EvalResult

    last = next((entry for entry in reversed(log_history) if any(k.startswith("eval_") for k in entry)), None)
    if last is None:
        return []
    return [EvalResult(task_type=PIPELINE_TAG, dataset_type=dataset, dataset_name=dataset, dataset_split="eval",
                       metric_type=key.removeprefix("eval_"), metric_name=key, metric_value=value)
            for key, value in last.items()
            if key.startswith("eval_") and key not in _EVAL_TIMINGS and isinstance(value, (int, float))]


def framework_versions() -> str:
    lines = []
    for label, dist in (("trl-latent", "trl-latent"), ("TRL", "trl"), ("Transformers", "transformers"),
                        ("PEFT", "peft"), ("PyTorch", "torch"), ("Datasets", "datasets"), ("Tokenizers", "tokenizers")):
        try:
            lines.append(f"- {label}: {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return "\n".join(lines)


def citations(algorithm: str | None, algorithm_citation: str | None) -> str:
    parts = ["## Citations", "", "The method, 4DThinker (latent imagery, DIFT, 4DRL):", "",
             f"```bibtex\n{CITATION_4DTHINKER}\n```", ""]
    if algorithm and algorithm_citation:
        parts += [f"{algorithm}, the algorithm this stage optimises with:", "", f"```bibtex\n{algorithm_citation.strip()}\n```",
                  ""]
    parts += ["TRL, the trainers this builds on:", "", f"```bibtex\n{CITATION_TRL}\n```", ""]
    return "\n".join(parts)


class LatentModelCardMixin:
    """Builds the model card (see the module docstring) and writes it wherever weights are saved.

    ``card_dataset_name`` (set by the training scripts to their ``dataset_name``) is the training data named in the
    card when ``create_model_card`` is not given one; ``card_algorithm`` names the paper in the TRL trainer's
    ``_paper`` (``None``: the TRL trainer's algorithm has no paper to cite, as for SFT).
    """

    card_dataset_name: str | None = None
    card_algorithm: str | None = None

    def latent_card_details(self) -> dict[str, str]:
        raise NotImplementedError(f"{type(self).__name__} must say what goes into its model card")

    def build_model_card(self, model_name: str, dataset_name: str | None = None,
                         tags: str | Iterable[str] | None = None) -> Any:
        """The card as a ``huggingface_hub.ModelCard`` (metadata and text); nothing is written."""
        from huggingface_hub import ModelCard, ModelCardData

        name_or_path = getattr(self.model.config, "_name_or_path", None)
        base, named = base_model_of(name_or_path)
        inherited = parent_card(name_or_path) if name_or_path and Path(name_or_path).is_dir() else {}
        tags = [tags] if isinstance(tags, str) else list(tags or [])
        history = self.state.log_history
        eval_data = ", ".join(data_sources(self.eval_dataset)) or "eval_dataset"
        data = ModelCardData(
            base_model=base,
            datasets=hub_dataset_ids(dataset_name or self.card_dataset_name) or None,
            library_name="transformers",
            pipeline_tag=PIPELINE_TAG,
            license=inherited.get("license"),
            license_name=inherited.get("license_name"),
            license_link=inherited.get("license_link"),
            model_name=model_name,
            tags=list(dict.fromkeys([*tags, *self._tag_names, *CARD_TAGS])),
            eval_results=eval_results(history, eval_data) or None,
        )
        model_id = self.hub_model_id or model_name
        license_line = ("" if data.license else
                        "No license is recorded for the base model here; its own license applies to these weights.\n\n")
        text = "\n".join([
            f"# Model Card for {model_name}", "",
            f"This model is a fine-tuned version of {named}, trained with {self._name} from trl-latent: the "
            "4DThinker method (reasoning with latent \"mental imagery\" tokens about motion in video) on top of "
            "[TRL](https://github.com/huggingface/trl).", "",
            license_line + quick_start(model_id, self.args.visual_options).rstrip("\n"), "",
            render_section(self.latent_card_details()),
            "## Training procedure", "",
            "### Training hyperparameters", "", table(hyperparameters(self.args, self.state)), "",
            "### Training results", "",
            table(final_metrics(history)) if any("loss" in entry for entry in history) else "Not trained yet.", "",
            *(["## Evaluation", "", f"The trainer's last evaluation, on {eval_data}:", "",
               table({r.metric_name: f"{r.metric_value:.4g}" for r in data.eval_results}), ""]
              if data.eval_results else []),
            "### Framework versions", "", framework_versions(), "",
            citations(self.card_algorithm, self._paper.get("citation")),
        ])
        return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{text}")

    def write_model_card(self, folder: Path, model_name: str | None = None, dataset_name: str | None = None,
                         tags: str | Iterable[str] | None = None) -> None:
        """Write ``folder/README.md`` on the main process, if ``folder`` holds weights."""
        if self.is_world_process_zero() and has_weights(folder):
            card = self.build_model_card(model_name or folder.name, dataset_name, tags)
            card.save(folder / "README.md")

    def create_model_card(
        self, model_name: str | None = None, dataset_name: str | None = None, tags: str | Iterable[str] | None = None
    ) -> None:
        """TRL's hook (checkpoints, ``push_to_hub``): the card for ``output_dir``, once weights are there."""
        self.write_model_card(Path(self.args.output_dir), model_name, dataset_name, tags)

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        self.write_model_card(folder, Path(self.args.output_dir).name)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        super().save_model(output_dir, _internal_call)
        if not _internal_call:  # push_to_hub writes the card itself, after this
            folder = Path(output_dir or self.args.output_dir)
            self.write_model_card(folder, folder.name)
