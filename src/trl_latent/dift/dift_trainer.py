"""Dynamic-Imagery Fine-Tuning: SFT on text interleaved with latent imagery, plus a next-embedding loss.

Each imagery image of an answer is encoded by the frozen vision tower and pooled into K vectors, the targets of a
cosine loss on the hidden state one position before each ``<|latent_pad|>``, so that at inference the model's own
hidden state can stand in for the image. What the pad positions receive as input is ``latent_feedback``: the target
vectors (``teacher`` forcing, one parallel forward) or, as at inference, the model's own previous last-layer hidden
state (``self``: the language model runs block by block with the KV cache, see :func:`feed_back_latents`).
Everything else is ``SFTTrainer``: the fused LM head computes the text cross-entropy, and a forward hook on the
backbone captures the hidden states it never returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoProcessor, DynamicCache
from transformers.modeling_outputs import BaseModelOutputWithPast
from trl import SFTTrainer
from trl.trainer.utils import create_model_from_path

from ..latents import compute_latent_targets, feedback_vector, inject_latents, vision_backbone
from ..model_card import (
    LatentModelCardMixin,
    latent_spec_details,
    training_data_details,
)
from ..models import adapter_for, apply_position_rule
from ..resume import ResumeWeightsMixin
from ..skipping import SkippedSamplesMixin
from ..tokens import (
    LatentSpec,
    add_latent_tokens,
    get_latent_spec,
    get_loss_weights,
    set_feedback_norm,
    set_loss_weights,
)
from .collator import DataCollatorForLatentImagery
from .dift_config import LatentImageryConfig

LATENT_BATCH_KEYS = ("latent_pixel_values", "latent_image_grid_thw")


def _latent_predictions(hidden_states: torch.Tensor, input_ids: torch.Tensor, pad_id: int, count: int) -> torch.Tensor:
    """``h[t-1]`` for every pad position ``t``, in row-major order: ``[count, H]``, or an error naming both counts."""
    predictions = hidden_states[:, :-1][input_ids[:, 1:] == pad_id]
    if predictions.shape[0] != count:
        raise ValueError(f"the batch has {predictions.shape[0]} <|latent_pad|> positions but {count} target vectors")
    return predictions


def latent_similarity_loss(
    hidden_states: torch.Tensor, input_ids: torch.Tensor, targets: torch.Tensor, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, mean cosine)`` of the next-embedding prediction at the latent pads.

    ``hidden_states [B, L, H]`` are the last-layer states, ``targets [N, K, H]`` the pooled imagery vectors in row-major
    order of the pad blocks. The prediction for pad position ``t`` is ``h[t-1]``. The loss is the mean over images of
    the mean over their K positions of ``1 - cos``, computed in float32 on L2-normalised vectors (bf16 cosines of
    2k-dim vectors are too coarse for a loss that ends near zero).
    """
    num_images, latent_size, hidden = targets.shape
    try:
        predictions = _latent_predictions(hidden_states, input_ids, pad_id, num_images * latent_size)
    except ValueError as error:
        raise ValueError(f"{error} ({num_images} imagery images x K={latent_size})") from None
    predictions = F.normalize(predictions.float(), dim=-1).view(num_images, latent_size, hidden)
    cosine = (predictions * F.normalize(targets.float(), dim=-1)).sum(-1)
    return (1.0 - cosine).mean(dim=1).mean(), cosine.mean()


class LatentImageryTrainer(ResumeWeightsMixin, SkippedSamplesMixin, LatentModelCardMixin, SFTTrainer):
    """[`~trl.SFTTrainer`] for DIFT. ``model`` is a model id / local path or a loaded Qwen2.5-VL; the latent tokens
    are added when it lacks them, and a [`DataCollatorForLatentImagery`] is built when no collator is given. The
    training records are those of :func:`trl_latent.data.load_records` (task ``"dift"``)."""

    _tag_names = ["trl", "sft", "dift", "latent-imagery"]
    _name = "DIFT"

    def __init__(
        self,
        model: Any,
        args: LatentImageryConfig | None = None,
        data_collator: Any = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        peft_config: Any = None,
        **kwargs: Any,
    ) -> None:
        if args is None:
            name = model if isinstance(model, str) else model.config._name_or_path
            args = LatentImageryConfig(f"{str(name).rstrip('/').split('/')[-1]}-DIFT")
        elif not isinstance(args, LatentImageryConfig):
            raise TypeError(f"args must be a LatentImageryConfig, got {type(args).__name__}")
        if isinstance(model, str):
            # Loaded here rather than by SFTTrainer: the latent tokens must exist before PEFT wraps the model
            if processing_class is None:
                processing_class = AutoProcessor.from_pretrained(model, trust_remote_code=args.trust_remote_code)
            init_kwargs = dict(args.model_init_kwargs or {})
            init_kwargs.setdefault("trust_remote_code", args.trust_remote_code)
            if args.distributed_state.distributed_type in ("MULTI_GPU", "DEEPSPEED"):
                init_kwargs["device_map"] = None
            model = create_model_from_path(model, **init_kwargs)
            args.model_init_kwargs = None  # consumed; SFTTrainer would warn that they are ignored
        if processing_class is None:
            raise ValueError("pass the model's processor as `processing_class` when `model` is an object")

        self.latent_spec: LatentSpec = add_latent_tokens(
            model, processing_class, latent_size=args.latent_size, compress_strategy=args.compress_strategy
        )
        args.resolve_loss_weights(get_loss_weights(model))
        set_loss_weights(model, args.ce_weight, args.sim_weight)
        apply_position_rule(model, args.mrope_position_rule)
        if args.freeze_vision_tower:
            visual = vision_backbone(model).visual
            visual.requires_grad_(False)
            visual.eval()
        if peft_config is not None:
            _make_latent_rows_trainable(peft_config, self.latent_spec)
        if data_collator is None:
            data_collator = DataCollatorForLatentImagery(
                processor=processing_class,
                spec=self.latent_spec,
                visual=args.visual_options,
                imagery_min_pixels=args.imagery_min_pixels,
                imagery_max_pixels=args.imagery_max_pixels,
                max_length=args.max_length,
                skip_invalid=args.skip_invalid_samples,
                spare_records=train_dataset,
            )
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            peft_config=peft_config,
            **kwargs,
        )
        _expose_lm_head_bias(self.model)
        if args.latent_feedback_norm is not None:
            norm = self.measure_target_norm() if args.latent_feedback_norm == "target" else None
            set_feedback_norm(self.model, norm)
            self.latent_spec = get_latent_spec(self.model)

    @torch.no_grad()
    def measure_target_norm(self) -> float:
        """Mean norm of the imagery target vectors of the first ``feedback_norm_samples`` training records.

        These are the vectors the pads receive under teacher forcing, so their norm is the scale the model learnt to
        read latents at; with a frozen tower (the default) it never changes during training.
        """
        records = self.train_dataset
        count = min(len(records), self.args.feedback_norm_samples)
        step = max(1, self.args.per_device_train_batch_size)
        total, vectors = 0.0, 0
        for start in range(0, count, step):
            batch = self.data_collator([records[i] for i in range(start, min(count, start + step))])
            if "latent_pixel_values" not in batch:
                continue
            device = self.model.get_input_embeddings().weight.device
            targets = compute_latent_targets(self.model, batch["latent_pixel_values"].to(device),
                                             batch["latent_image_grid_thw"].to(device), self.latent_spec.latent_size)
            norms = targets.float().norm(dim=-1).flatten()
            total, vectors = total + float(norms.sum()), vectors + norms.numel()
        if not vectors:
            raise ValueError(f"latent_feedback_norm='target' needs imagery: the first {count} training records have none")
        return total / vectors

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        num_skipped = inputs.pop("num_skipped", None)  # samples the collator dropped (skip_invalid_samples)
        if num_skipped is not None and mode == "train":
            self.count_skipped(num_skipped.item())
        latent_inputs = {key: inputs.pop(key) for key in LATENT_BATCH_KEYS if key in inputs}
        if not latent_inputs:  # no imagery in this batch: plain SFT on the text
            self._metrics[mode]["num_imagery"].append(0.0)
            result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if return_outputs:
                return result[0] * self.args.ce_weight, result[1]
            return result * self.args.ce_weight

        backbone = vision_backbone(model)
        if self.args.freeze_vision_tower:
            backbone.visual.eval()  # Trainer.train() puts the whole model back in train mode every step
        targets = compute_latent_targets(
            model, latent_inputs["latent_pixel_values"], latent_inputs["latent_image_grid_thw"],
            self.latent_spec.latent_size,
        )
        captured: dict[str, torch.Tensor] = {}

        def keep_hidden_states(module: torch.nn.Module, args: tuple, output: Any) -> None:
            captured.setdefault("hidden", output.last_hidden_state)  # the first forward is the loss one (see below)

        handle = backbone.register_forward_hook(keep_hidden_states)
        pad_id = self.latent_spec.pad_id
        if self.args.latent_feedback == "self":
            feeding = feed_back_latents(model, inputs["input_ids"] == pad_id)
        else:
            vectors = targets.flatten(0, 1)
            if return_outputs:  # SFTTrainer then runs a second, logits-only forward that needs the vectors too
                vectors = torch.cat([vectors, vectors])
            feeding = inject_latents(model, pad_id, vectors)
        try:
            with feeding:
                result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        finally:
            handle.remove()
        ce_loss = result[0] if return_outputs else result
        sim_loss, cosine = latent_similarity_loss(captured["hidden"], inputs["input_ids"], targets, pad_id)
        norm_ratio = latent_norm_ratio(captured["hidden"], inputs["input_ids"], targets, pad_id)
        # As TRL does for its MoE aux loss: with a token count over the accumulation window, the CE is already
        # normalised for gradient accumulation while this per-micro-batch mean is not
        steps = self.current_gradient_accumulation_steps if num_items_in_batch is not None else 1
        loss = self.args.ce_weight * ce_loss + self.args.sim_weight * sim_loss / steps

        gather = self.accelerator.gather_for_metrics
        self._metrics[mode]["ce_loss"].append(gather(ce_loss.detach()).mean().item())
        self._metrics[mode]["sim_loss"].append(gather(sim_loss.detach()).mean().item())
        self._metrics[mode]["cos_sim"].append(gather(cosine.detach()).mean().item())
        self._metrics[mode]["latent_norm_ratio"].append(gather(norm_ratio).mean().item())
        num_imagery = torch.tensor(float(targets.shape[0]), device=ce_loss.device)
        self._metrics[mode]["num_imagery"].append(gather(num_imagery).sum().item())
        return (loss, result[1]) if return_outputs else loss

    def latent_card_details(self) -> dict[str, str]:
        return {
            "Method": "DIFT (Dynamic-Imagery Fine-Tuning): text interleaved with latent imagery, " + (
                "self-fed (the model's own hidden states at the latent positions)"
                if self.args.latent_feedback == "self" else "teacher-forced"
            ),
            **latent_spec_details(self.model),
            "Loss": (
                f"{self.args.ce_weight} × CE(text; latent start/end supervised, pads excluded) + "
                f"{self.args.sim_weight} × mean(1 − cos(h[t−1], imagery target[t])) over latent positions"
            ),
            **training_data_details(self.train_dataset, self.args.visual_options),
            "Vision tower": "frozen" if self.args.freeze_vision_tower else "trained",
        }


def _expose_lm_head_bias(model: Any) -> None:
    """Let TRL's fused LM head read ``lm_head.bias`` through PEFT's ``TrainableTokensWrapper``.

    With tied embeddings (Qwen2.5-VL-3B) PEFT also wraps ``lm_head`` for the trainable token rows; the wrapper exposes
    the merged ``weight`` but not ``bias``, which the fused head reads (TRL 1.16 + PEFT 0.21). Qwen's head has no bias,
    so ``None`` is the truth, set on the wrapper only.
    """
    head = model.get_output_embeddings()
    original = getattr(head, "original_module", None)
    if original is not None and "bias" not in dir(head) and getattr(original, "bias", None) is None:
        head.bias = None


def _make_latent_rows_trainable(peft_config: Any, spec: LatentSpec) -> None:
    """Train the embedding rows of the latent start/end tokens under LoRA (PEFT ``trainable_token_indices``).

    The rows are new, so frozen they would stay at their mean initialisation and the model could never learn to
    open or close a block. The pad row is never used as an input (its embedding is overwritten) nor predicted.
    """
    ids = [spec.start_id, spec.end_id]
    indices = peft_config.trainable_token_indices
    if indices is None:
        peft_config.trainable_token_indices = {"embed_tokens": ids}
    elif isinstance(indices, list):
        peft_config.trainable_token_indices = sorted({*indices, *ids})
    else:
        indices["embed_tokens"] = sorted({*indices.get("embed_tokens", []), *ids})


@torch.no_grad()
def latent_norm_ratio(
    hidden_states: torch.Tensor, input_ids: torch.Tensor, targets: torch.Tensor, pad_id: int
) -> torch.Tensor:
    """Mean over pad positions of ``||h[t-1]|| / ||target[t]||``.

    ``h[t-1]`` is what inference feeds back at pad ``t`` (and what ``self`` mode feeds back in training). The cosine
    loss trains its direction only, so this ratio shows how far its magnitude is from the vectors the model saw as
    teacher-forced inputs.
    """
    flat = targets.reshape(-1, targets.shape[-1]).float()
    predictions = _latent_predictions(hidden_states, input_ids, pad_id, flat.shape[0]).float()
    return (predictions.norm(dim=-1) / flat.norm(dim=-1).clamp(min=1e-12)).mean()


@contextmanager
def feed_back_latents(model: Any, pad_mask: torch.Tensor) -> Iterator[list[torch.Tensor]]:
    """Run the language model of every forward inside the block block by block, as the inference loop does.

    ``pad_mask [B, L]`` marks the ``<|latent_pad|>`` positions of the batch. Each forward over a ``[B, L]`` sequence is
    cut before every column holding a pad of some row; the pieces run in order through the language model with one KV
    cache, and a row's pad input becomes the last-layer hidden state of the position before it (post final norm, through
    :func:`trl_latent.latents.feedback_vector`, as :func:`trl_latent.generation.generate_with_latents` feeds it), with
    its gradient. Positions are the ones the backbone computed for the whole sequence (``get_rope_index``), sliced per
    piece, so they equal a teacher-forced forward's. The pieces' hidden states are concatenated, so callers (the fused LM head, the hidden-state hook) see
    one ordinary output. Yields the list the fed-back vectors are appended to, in order of the cut columns, one
    ``[rows with a pad there, H]`` tensor per column.

    Gradient checkpointing cannot be on: transformers drops the cache of a checkpointed layer.
    """
    language_model = vision_backbone(model).language_model
    spec = get_latent_spec(model)
    slice_kwargs = adapter_for(model).slice_language_model_kwargs
    original = language_model.forward
    own = "forward" in vars(language_model)
    fed_back: list[torch.Tensor] = []

    def forward(*, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, cache: Any = None, use_cache: bool | None = None,
                **kwargs: Any) -> BaseModelOutputWithPast:
        del use_cache  # the pieces always run through the cache; the caller's (training) forward keeps none
        if cache is not None or inputs_embeds.shape[:2] != pad_mask.shape:
            raise ValueError("self-fed latents run whole training sequences, without a cache of their own")
        mask = pad_mask.to(inputs_embeds.device)
        columns = mask.any(0).nonzero().flatten().tolist()
        if columns and columns[0] == 0:
            raise ValueError("a sequence starts with <|latent_pad|>: there is no hidden state to feed back")
        bounds = [0, *columns, mask.shape[1]]
        cache = DynamicCache(config=language_model.config)
        pieces: list[torch.Tensor] = []
        for start, end in zip(bounds[:-1], bounds[1:]):
            embeds = inputs_embeds[:, start:end]
            if pieces:  # every piece but the first starts at a pad column
                rows = mask[:, start]
                fed_back.append(feedback_vector(pieces[-1][rows, -1], spec))
                first = embeds[:, 0].masked_scatter(rows[:, None], fed_back[-1].to(embeds.dtype))
                embeds = torch.cat([first[:, None], embeds[:, 1:]], dim=1)
            out = original(
                inputs_embeds=embeds,
                attention_mask=None if attention_mask is None else attention_mask[:, :end],
                # None (text-only, no mRoPE): the model counts from the cache length, i.e. the whole-sequence arange
                position_ids=None if position_ids is None else position_ids[..., start:end],
                cache=cache,
                use_cache=True,
                **slice_kwargs(kwargs, start, end),
            )
            pieces.append(out.last_hidden_state)
        return BaseModelOutputWithPast(last_hidden_state=torch.cat(pieces, dim=1))

    language_model.forward = forward
    try:
        yield fed_back
    finally:
        if own:
            language_model.forward = original
        else:
            del language_model.forward
