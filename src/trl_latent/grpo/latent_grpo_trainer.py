"""4DRL: GRPO whose rollouts think with latent imagery, on image or video prompts.

What changes relative to TRL's ``GRPOTrainer`` (everything else — rewards, group advantages, every loss type, KL,
entropy, PEFT reference, gradient accumulation, DeepSpeed — is the parent's code, untouched):

* **Rollouts** run :func:`trl_latent.generation.generate_with_latents` (batched, KV cache, per-row latent state, 3-D
  mRoPE) instead of ``model.generate``. The vectors fed back at ``<|latent_pad|>`` positions are kept with each sample
  (``latent_embeds [B, N, H]``: row ``i``'s vectors in order, zero-padded to the longest row).
* **Recomputation is exact.** Every log-prob forward (old, reference, policy) re-inserts those vectors with
  :func:`trl_latent.latents.inject_latents`, so the policy is optimised on the sequence it sampled — unlike the
  release, whose recomputation saw the learned pad embedding at latent positions.
* **Positions.** The config's ``mrope_position_rule`` (Qwen's reference rule by default) is installed in the policy
  and reference models; rollout and recompute compute positions with the same function, so each completion is scored
  at the positions it was sampled at, long low-fps clips included.
* **Video.** Rows carry their own processor tensors (``visual_inputs``, one dict per row) and
  :func:`~trl_latent.grpo.row_inputs.feed_row_inputs` hands them to each forward together with the rollout's mRoPE
  positions; frames are decoded at ``fps`` with their real rate (temporal mRoPE), images and frames fit the pixel
  budget (``trl_latent.data``). The ``num_generations`` rows of a prompt share one dict of tensors, so each chunk
  runs the vision tower once per prompt and reuses its features (``vision_once_per_prompt``).
* **Loss mask.** Policy gradient, KL and entropy act on sampled tokens only, through TRL's ``tool_mask``: 0 at the
  ``<|latent_pad|>`` positions (vectors, never sampled) and at ``<|latent_end|>`` (forced by the loop after K pads);
  ``<|latent_start|>`` is sampled by the policy — it is the decision to imagine — so it stays in the loss, unless
  ``mask_latent_start`` asks for the release's behaviour (all three latent tokens masked).
  ``num_items_in_batch`` is recomputed over the unmasked tokens, so the token-normalised losses (``dapo``, ``cispo``,
  ``vespo``) divide by what they sum.
* **Completions for rewards** are decoded with the latent tokens kept (other special tokens skipped), so a format
  reward can see where the imagery blocks are.

Dataset rows are what :func:`trl_latent.data.load_records` returns for ``task="rl"``: ``prompt`` (a string, or a
conversation whose user turn holds the ``{"type": "image"}`` / ``{"type": "video"}`` placeholder), one of ``image`` /
``video`` / ``frames`` (paths), and the reward columns (``answer``, ``type``, …).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from trl import GRPOConfig, GRPOTrainer
from trl.data_utils import is_conversational
from trl.extras.profiling import profiling_context
from trl.models import unwrap_model_for_generation
from trl.trainer.utils import pad

from ..data import DataRecordError, Visual, load_visual
from ..generation import generate_with_latents
from ..latents import inject_latents
from ..model_card import (
    LatentModelCardMixin,
    latent_spec_details,
    training_data_details,
)
from ..models import apply_position_rule
from ..resume import ResumeWeightsMixin
from ..skipping import SkippedSamplesMixin, skip_or_raise
from ..tokens import LATENT_END, LATENT_PAD, LATENT_START, LatentSpec, get_latent_spec
from .latent_grpo_config import LatentGRPOConfig
from .row_inputs import RowInputs, concat_rows, feed_row_inputs, process_row

VISUAL_COLUMNS = ("image", "images", "frames", "video")
"""Dataset columns holding user visuals; the trainer decodes them itself, so the parent never sees them."""


def latent_loss_mask(completion_ids: torch.Tensor, spec: LatentSpec | None, mask_start: bool = False) -> torch.Tensor:
    """``1`` where a completion token is scored (policy loss, KL, entropy), ``0`` at tokens the policy did not choose:
    ``<|latent_pad|>`` (a fed-back vector) and ``<|latent_end|>`` (forced after K pads). ``<|latent_start|>`` is sampled
    and stays scored unless ``mask_start`` (the release masks it)."""
    if spec is None:
        return torch.ones_like(completion_ids, dtype=torch.long)
    unscored = [spec.pad_id, spec.end_id] + ([spec.start_id] if mask_start else [])
    return (~torch.isin(completion_ids, torch.tensor(unscored, device=completion_ids.device))).long()


def decode_keeping_latents(tokenizer: Any, ids: list[int], spec: LatentSpec | None) -> str:
    """Decode like TRL (``skip_special_tokens=True``) but keep the latent tokens, which are special tokens too."""
    if spec is None:
        return tokenizer.decode(ids, skip_special_tokens=True)
    names = {spec.start_id: LATENT_START, spec.pad_id: LATENT_PAD, spec.end_id: LATENT_END}
    pieces: list[str] = []
    run: list[int] = []
    for token in ids:
        if token in names:
            if run:
                pieces.append(tokenizer.decode(run, skip_special_tokens=True))
                run = []
            pieces.append(names[token])
        else:
            run.append(token)
    if run:
        pieces.append(tokenizer.decode(run, skip_special_tokens=True))
    return "".join(pieces)


def pack_latents(latents: list[torch.Tensor]) -> torch.Tensor:
    """Per-row ``[n_i, H]`` vectors → ``[B, max n_i, H]``, zero-padded (a tensor with a batch dimension survives TRL's
    shuffle and split)."""
    longest = max(vectors.shape[0] for vectors in latents)
    first = latents[0]
    packed = first.new_zeros(len(latents), longest, first.shape[-1])
    for row, vectors in enumerate(latents):
        packed[row, : vectors.shape[0]] = vectors
    return packed


def unpack_latents(latent_embeds: torch.Tensor, completion_ids: torch.Tensor, spec: LatentSpec | None) -> list[torch.Tensor]:
    """Inverse of :func:`pack_latents`: each row's vectors, as many as its completion has ``<|latent_pad|>`` ids."""
    if spec is None:
        return []
    counts = (completion_ids == spec.pad_id).sum(-1).tolist()
    if counts and max(counts) > latent_embeds.shape[1]:
        raise ValueError(f"a completion has {max(counts)} latent positions but latent_embeds holds {latent_embeds.shape[1]}")
    return [latent_embeds[row, :count] for row, count in enumerate(counts)]


@dataclass
class _RowBatch:
    """What a log-prob forward over a batch needs besides token ids: each row's visuals and latent vectors."""

    inputs: list[RowInputs]
    latents: list[torch.Tensor]


class LatentGRPOTrainer(ResumeWeightsMixin, SkippedSamplesMixin, LatentModelCardMixin, GRPOTrainer):
    """GRPO for Qwen2.5-VL models that think with latent imagery (4DRL); see the module docstring for what differs.

    Works with a stock Qwen2.5-VL too (no latent tokens): it is then TRL's GRPO with video support.
    """

    _tag_names = ["trl", "grpo", "trl-latent", "4drl"]
    _name = "LatentGRPO"
    card_algorithm = "GRPO"  # the model card cites GRPOTrainer's paper (DeepSeekMath) as the algorithm, 4DThinker as the method

    def __init__(
        self,
        model: Any,
        reward_funcs: Any = None,
        args: LatentGRPOConfig | None = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        reward_processing_classes: Any = None,
        callbacks: Any = None,
        optimizers: tuple = (None, None),
        quantization_config: Any = None,
        peft_config: Any = None,
    ) -> None:
        if args is None:
            name = model if isinstance(model, str) else model.config._name_or_path or "model"
            args = LatentGRPOConfig(f"{name.split('/')[-1]}-LatentGRPO")
        elif isinstance(args, GRPOConfig) and not isinstance(args, LatentGRPOConfig):
            raise TypeError("LatentGRPOTrainer needs a LatentGRPOConfig (it adds the video/pixel settings and checks)")
        super().__init__(
            model,
            reward_funcs=reward_funcs,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            reward_processing_classes=reward_processing_classes,
            callbacks=callbacks,
            optimizers=optimizers,
            quantization_config=quantization_config,
            peft_config=peft_config,
        )
        if not self._is_vlm:
            raise TypeError("LatentGRPOTrainer needs a Qwen2.5-VL processor as processing_class, not a tokenizer")
        self.latent_spec = get_latent_spec(self.model)
        for model_ in (self.model, self.ref_model):
            if model_ is not None:
                apply_position_rule(model_, args.mrope_position_rule)
        self.visual_options = args.visual_options
        self._vision_token_ids = [i for i in (self._image_pad_token_id, self._video_pad_token_id) if i is not None]
        self._pending_visuals: list[Visual | None] | None = None
        self._row_batch: _RowBatch | None = None

    def latent_card_details(self) -> dict[str, str]:
        return {
            "Method": "4DRL: GRPO with latent-imagery rollouts, the rollout's latent vectors re-inserted at every "
                      "log-prob recomputation",
            **latent_spec_details(self.model),
            "Loss": f"{self.loss_type} (beta {self.beta}) on sampled tokens only: latent pads and the forced "
                    "latent end are masked, the sampled latent start is "
                    + ("masked too (as the release)" if self.args.mask_latent_start else "kept"),
            "Rewards": " + ".join(f"{weight:g} × `{name}`"
                                  for name, weight in zip(self.reward_func_names, self.reward_weights.tolist(), strict=True)),
            **training_data_details(self.train_dataset, self.args.visual_options),
        }

    def _set_signature_columns_if_needed(self) -> None:
        if self._signature_columns is None:
            self._signature_columns = ["prompt", *VISUAL_COLUMNS]

    # ---------------------------------------------------------------------------------------------------------------
    # Rollout

    def _load_visual(self, row: dict[str, Any], cache: dict[tuple, Visual | DataRecordError]) -> Visual | DataRecordError | None:
        """Decode a row's visual once per generation batch (its ``num_generations`` copies share it); a visual that
        fails to decode is an error, or with ``skip_invalid_samples`` returned (and logged once)."""
        if row.get("images"):
            raise ValueError(
                f"{row.get('source', 'a dataset row')}: an `images` list is not supported; give one `image`, a "
                "`video`, or the video's `frames`"
            )
        key = (row.get("image") or "", row.get("video") or "", tuple(row.get("frames") or ()))
        if not any(key):
            return None
        if key not in cache:
            try:
                cache[key] = load_visual(row, self.visual_options)
            except DataRecordError as error:
                skip_or_raise(error, self.args.skip_invalid_samples)
                cache[key] = error
        return cache[key]

    @staticmethod
    def _as_conversation(prompt: str | list[dict[str, Any]], visual: Visual | None) -> list[dict[str, Any]]:
        if not isinstance(prompt, str):
            return prompt
        placeholder = [] if visual is None else [{"type": "video" if visual.is_video else "image"}]
        return [{"role": "user", "content": [*placeholder, {"type": "text", "text": prompt}]}]

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        cache: dict[tuple, Visual | DataRecordError] = {}
        visuals = [self._load_visual(row, cache) for row in inputs]
        # A row whose visual failed rolls out on its text alone and is masked out of the loss below: the batch keeps
        # its shape and its groups, so every process still takes the same steps.
        failed = torch.tensor([isinstance(visual, DataRecordError) for visual in visuals])
        visuals = [None if isinstance(visual, DataRecordError) else visual for visual in visuals]
        rows = [
            {**{k: v for k, v in row.items() if k not in VISUAL_COLUMNS}, "prompt": self._as_conversation(row["prompt"], visual)}
            for row, visual in zip(inputs, visuals, strict=True)
        ]
        self._pending_visuals = visuals
        try:
            output = super()._generate_and_score_completions(rows)
            batch = self._row_batch
        finally:
            self._pending_visuals = None
            self._row_batch = None

        mask = latent_loss_mask(output["completion_ids"], self.latent_spec, self.args.mask_latent_start)
        if "tool_mask" in output:
            mask = mask * output["tool_mask"]
        mask[failed.to(mask.device)] = 0
        if self.args.skip_invalid_samples and self.model.training:  # every copy of a prompt failed: count prompts
            self.count_skipped(failed.sum().item() / self.num_generations)
        output["tool_mask"] = mask
        output["num_items_in_batch"] = self.accelerator.gather((output["completion_mask"] * mask).sum()).sum()
        output["visual_inputs"] = batch.inputs
        output["latent_embeds"] = pack_latents(batch.latents)
        return output

    def _tokenize_prompts(self, prompts: list) -> tuple[list[list[int]], None, dict[str, torch.Tensor]]:
        visuals = self._pending_visuals
        if visuals is None or len(visuals) != len(prompts):
            raise RuntimeError("LatentGRPOTrainer._tokenize_prompts runs only inside _generate_and_score_completions")
        processed: dict[tuple[str, int], tuple[list[int], RowInputs]] = {}
        prompt_ids, row_inputs = [], []
        for prompt, visual in zip(prompts, visuals, strict=True):
            text = self.processing_class.apply_chat_template(
                prompt, tokenize=False, add_generation_prompt=True, **self.chat_template_kwargs
            )
            key = (text, id(visual))
            if key not in processed:
                processed[key] = process_row(self.processing_class, text, visual)
            ids, tensors = processed[key]
            prompt_ids.append(ids)
            row_inputs.append(tensors)
        self._row_batch = _RowBatch(inputs=row_inputs, latents=[])
        return prompt_ids, None, concat_rows(row_inputs)

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        device = self.accelerator.device
        prompts = [torch.tensor(ids) for ids in prompt_ids]
        input_ids = pad(
            prompts, padding_value=self._tokenizer.pad_token_id, padding_side="left",
            pad_to_multiple_of=self.pad_to_multiple_of,
        ).to(device)
        attention_mask = pad(
            [torch.ones_like(ids) for ids in prompts], padding_value=0, padding_side="left",
            pad_to_multiple_of=self.pad_to_multiple_of,
        ).to(device)
        multimodal = {key: value.to(device) for key, value in multimodal_fields.items()}
        with (
            profiling_context(self, "generate_with_latents"),
            unwrap_model_for_generation(
                self.model_wrapped,
                self.accelerator,
                gather_deepspeed3_params=self.args.ds3_gather_for_generation,
                gradient_checkpointing_kwargs=self.args.activation_checkpointing_kwargs,
            ) as unwrapped_model,
            torch.no_grad(),
            self._dist.summon_full_params(self.model_wrapped, recurse=False),
        ):
            out = generate_with_latents(
                unwrapped_model,
                input_ids,
                attention_mask,
                max_new_tokens=self.max_completion_length,
                do_sample=True,
                temperature=self.temperature,
                top_k=self.top_k or 0,
                top_p=self.top_p,
                repetition_penalty=self.repetition_penalty,
                eos_token_id=self.eos_token_ids,
                pad_token_id=self._tokenizer.pad_token_id,
                suppress_token_ids=self._vision_token_ids,
                spec=self.latent_spec,
                # GRPOConfig's option, as stock generate reads it: a static cache, decoded by a CUDA graph on a GPU
                cache_implementation="static" if self.args.cache_implementation == "static" else "dynamic",
                cuda_graph=self.args.cache_implementation == "static" and device.type == "cuda",
                **multimodal,
            )
        kept = out.completion_mask
        self._row_batch.latents = [out.latent_embeds[row][out.latent_mask[row] & kept[row]] for row in range(len(prompts))]
        completion_ids = [ids[keep].tolist() for ids, keep in zip(out.completion_ids.cpu(), kept.cpu(), strict=True)]
        return completion_ids, None

    def _generate(self, prompts: list):
        result = list(super()._generate(prompts))
        if self.latent_spec is not None:
            texts = [decode_keeping_latents(self._tokenizer, ids, self.latent_spec) for ids in result[1]]
            conversational = is_conversational({"prompt": prompts[0]})
            result[3] = [[{"role": "assistant", "content": text}] for text in texts] if conversational else texts
        return tuple(result)

    # ---------------------------------------------------------------------------------------------------------------
    # Log-prob recomputation and loss

    @contextmanager
    def _using_rows(self, batch: _RowBatch) -> Iterator[None]:
        self._row_batch = batch
        try:
            yield
        finally:
            self._row_batch = None

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None, **kwargs):
        batch = self._row_batch
        if batch is None:
            raise RuntimeError("log-probs of LatentGRPOTrainer need the batch's rows (visuals, latent vectors) in scope")
        with ExitStack() as stack:
            stack.enter_context(feed_row_inputs(model, batch.inputs, share_vision=self.args.vision_once_per_prompt))
            vectors = [v for v in batch.latents if v.numel()]
            if vectors:
                stack.enter_context(inject_latents(model, self.latent_spec.pad_id, torch.cat(vectors)))
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size, **kwargs
            )

    def _compute_loss(self, model, inputs):
        latents = unpack_latents(inputs["latent_embeds"], inputs["completion_ids"], self.latent_spec)
        with self._using_rows(_RowBatch(inputs=inputs["visual_inputs"], latents=latents)):
            return super()._compute_loss(model, inputs)
