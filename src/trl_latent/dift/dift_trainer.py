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

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoProcessor, DynamicCache
from transformers.modeling_outputs import BaseModelOutputWithPast
from trl import SFTTrainer
from trl.trainer.utils import create_model_from_path

from ..data import first_frame_rows
from ..latents import compute_latent_targets, feedback_vector, inject_latents, vision_backbone
from ..model_card import (
    LatentModelCardMixin,
    latent_spec_details,
    training_data_details,
)
from ..models import adapter_for, apply_position_rule, position_rule
from ..resume import ResumeWeightsMixin
from ..skipping import SkippedSamplesMixin
from ..tokens import (
    LatentSpec,
    _unwrap,
    add_latent_tokens,
    get_latent_spec,
    get_loss_weights,
    set_feedback_norm,
    set_latent_imagery,
    set_loss_weights,
    tokenizer_of,
)
from .collator import DataCollatorForLatentImagery
from .contrast import (
    continuation_log_probs,
    continuation_mask,
    contrast_loss,
    differing_rows,
    reasoning_mask,
    reverse_within_rows,
    swap_between_rows,
)
from .dift_config import LatentImageryConfig

logger = logging.getLogger(__name__)

LATENT_BATCH_KEYS = ("latent_pixel_values", "latent_image_grid_thw")
NEGATIVE_DESCRIPTIONS = {"other_row": "another row's imagery", "reversed": "its imagery reversed",
                         "counterfactual": "the imagery of a counterfactual twin of its clip"}  # for the model card
SIM_TERMS = {"none": "h[t−1], imagery target[t]",
             "mean": "h[t−1] − μ, imagery target[t] − μ; μ the slot's mean target",
             "both": "h[t−1], imagery target[t]) + 1 − cos(h[t−1] − μ, imagery target[t] − μ; μ the slot's mean "
                     "target), halved"}  # model card
SPAN_DESCRIPTIONS = {"continuation": "text after the block", "reasoning": "reasoning after the block"}  # model card
NEGATIVE_BATCH_KEYS = ("latent_negative_pixel_values", "latent_negative_image_grid_thw", "latent_negative_image_keys",
                       "latent_negative_rows")


def _latent_predictions(hidden_states: torch.Tensor, input_ids: torch.Tensor, pad_id: int, count: int) -> torch.Tensor:
    """``h[t-1]`` for every pad position ``t``, in row-major order: ``[count, H]``, or an error naming both counts."""
    predictions = hidden_states[:, :-1][input_ids[:, 1:] == pad_id]
    if predictions.shape[0] != count:
        raise ValueError(f"the batch has {predictions.shape[0]} <|latent_pad|> positions but {count} target vectors")
    return predictions


def latent_similarity_loss(
    hidden_states: torch.Tensor, input_ids: torch.Tensor, targets: torch.Tensor, pad_id: int,
    center: torch.Tensor | None = None, with_raw: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, mean cosine)`` of the next-embedding prediction at the latent pads.

    ``hidden_states [B, L, H]`` are the last-layer states, ``targets [N, K, H]`` the pooled imagery vectors in row-major
    order of the pad blocks. The prediction for pad position ``t`` is ``h[t-1]``. The loss is the mean over images of
    the mean over their K positions of ``1 - cos``, computed in float32 on L2-normalised vectors (bf16 cosines of
    2k-dim vectors are too coarse for a loss that ends near zero). ``center [K, H]`` (``latent_sim_centering`` other
    than ``"none"``) is subtracted from prediction and target of each slot first, so the cosine scores what differs
    between questions; ``with_raw`` (``"both"``) averages that term and the uncentred one, loss and cosine alike.
    """
    num_images, latent_size, hidden = targets.shape
    try:
        predictions = _latent_predictions(hidden_states, input_ids, pad_id, num_images * latent_size)
    except ValueError as error:
        raise ValueError(f"{error} ({num_images} imagery images x K={latent_size})") from None
    predictions, targets = predictions.float().view(num_images, latent_size, hidden), targets.float()
    loss, cosine = _cosine_loss(predictions, targets, center)
    if with_raw:  # half centred, half the release's raw term
        raw_loss, raw_cosine = _cosine_loss(predictions, targets, None)
        loss, cosine = (loss + raw_loss) / 2, (cosine + raw_cosine) / 2
    return loss, cosine


def _cosine_loss(predictions: torch.Tensor, targets: torch.Tensor, center: torch.Tensor | None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean over images of the mean over K of 1 − cos, mean cosine)`` of ``[N, K, H]`` float32 vectors, each side
    minus ``center [K, H]`` when given."""
    if center is not None:
        predictions, targets = predictions - center, targets - center
    cosine = (F.normalize(predictions, dim=-1) * F.normalize(targets, dim=-1)).sum(-1)
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
        if args.latent_imagery is not None:
            set_latent_imagery(model, args.latent_imagery)
            self.latent_spec = get_latent_spec(model)
        args.resolve_loss_weights(get_loss_weights(model))
        set_loss_weights(model, args.ce_weight, args.sim_weight)
        apply_position_rule(model, args.mrope_position_rule)
        if args.freeze_vision_tower:
            visual = vision_backbone(model).visual
            visual.requires_grad_(False)
            visual.eval()
        if peft_config is not None:
            _make_latent_rows_trainable(peft_config, self.latent_spec)
        counterfactual = bool(args.latent_contrast_weight) and args.latent_contrast_negatives == "counterfactual"
        if counterfactual and _lacks_counterfactuals(train_dataset):
            raise ValueError("latent_contrast_negatives='counterfactual' takes its negatives from the records' "
                             "counterfactual_output, and no training record has one (datagen.counterfactual "
                             "writes them)")
        self._first_frame_rows = 0
        if args.first_frame_share and train_dataset is not None:
            train_dataset, self._first_frame_rows = first_frame_rows(train_dataset, args.first_frame_share)
            logger.info("first_frame_share=%s: %d of %d training rows see only their first frame",
                        args.first_frame_share, self._first_frame_rows, len(train_dataset))
        if data_collator is None:
            adapter, rule = adapter_for(model), position_rule(model)
            data_collator = DataCollatorForLatentImagery(
                processor=processing_class,
                spec=self.latent_spec,
                visual=args.visual_options,
                imagery_min_pixels=args.imagery_min_pixels,
                imagery_max_pixels=args.imagery_max_pixels,
                max_length=args.max_length,
                skip_invalid=args.skip_invalid_samples,
                spare_records=train_dataset,
                positions=(lambda ids, mask, multimodal: adapter.positions(ids, mask, multimodal, rule)[0])
                if args.padding_free else None,
                counterfactual=counterfactual,
            )
        padding_free, args.padding_free = args.padding_free, False  # packed by our collator, not SFTTrainer's
        try:
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
        finally:
            args.padding_free = padding_free
        _expose_lm_head_bias(self.model)
        self._target_cache: dict[str, torch.Tensor] = {}
        # both statistics read the same sampled targets: encode them once
        feedback, centering = args.latent_feedback_norm, args.latent_sim_centering
        needs = [f"latent_feedback_norm={feedback!r}"] if feedback in ("target", "centred") else []
        needs += [f"latent_sim_centering={centering!r}"] if centering != "none" else []
        samples = self._sample_targets(" and ".join(needs)) if needs else None
        center = self.measure_target_mean(samples) if centering != "none" or feedback == "centred" else None
        if feedback is not None:
            if feedback == "none":
                set_feedback_norm(self.model, None)
            elif feedback == "target":
                set_feedback_norm(self.model, self.measure_target_norm(samples))
            else:
                set_feedback_norm(self.model, self.measure_target_norm(samples, center), center)
            self.latent_spec = get_latent_spec(self.model)
        self._target_center = center if centering != "none" else None

    @torch.no_grad()
    def _sample_targets(self, setting: str) -> list[torch.Tensor]:
        """The imagery targets ``[N, K, H]`` of the first ``feedback_norm_samples`` training records, one tensor per
        collated batch; ``setting`` names what needs them in the error raised when those records have no imagery.

        These are the vectors the pads receive under teacher forcing; with a frozen tower (the default) they never
        change during training, so a resumed run measures the same statistics again.
        """
        records = self.train_dataset
        count = min(len(records), self.args.feedback_norm_samples)
        step = max(1, self.args.per_device_train_batch_size)
        samples = []
        for start in range(0, count, step):
            batch = self.data_collator([records[i] for i in range(start, min(count, start + step))])
            if "latent_pixel_values" not in batch:
                continue
            device = self.model.get_input_embeddings().weight.device
            samples.append(compute_latent_targets(self.model, batch["latent_pixel_values"].to(device),
                                                  batch["latent_image_grid_thw"].to(device),
                                                  self.latent_spec.latent_size))
        if not samples:
            raise ValueError(f"{setting} needs imagery: the first {count} training records have none")
        return samples

    def measure_target_norm(self, samples: list[torch.Tensor] | None = None, center: torch.Tensor | None = None
                            ) -> float:
        """Mean norm of the imagery target vectors of the first ``feedback_norm_samples`` training records: the scale
        the model learnt to read latents at (``latent_feedback_norm="target"``); with ``center [K, H]``, of each
        target minus its slot's row (``"centred"``). ``samples``: those targets when already encoded
        (:meth:`_sample_targets`)."""
        total, vectors = 0.0, 0
        for targets in samples if samples is not None else self._sample_targets("latent_feedback_norm='target'"):
            norms = (targets.float() - (0 if center is None else center)).norm(dim=-1).flatten()
            total, vectors = total + float(norms.sum()), vectors + norms.numel()
        return total / vectors

    def measure_target_mean(self, samples: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Mean imagery target of each latent slot, ``[K, H]`` in float32, over the first ``feedback_norm_samples``
        training records: the part every question's imagery shares (``latent_sim_centering`` ``"mean"``, ``"both"``).
        ``samples``: those targets when already encoded (:meth:`_sample_targets`)."""
        if samples is None:
            samples = self._sample_targets(f"latent_sim_centering={self.args.latent_sim_centering!r}")
        return torch.cat([t.float() for t in samples]).mean(0)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        num_skipped = inputs.pop("num_skipped", None)  # samples the collator dropped (skip_invalid_samples)
        if num_skipped is not None and mode == "train":
            self.count_skipped(num_skipped.item())
        latent_inputs = {key: inputs.pop(key) for key in LATENT_BATCH_KEYS if key in inputs}
        image_keys = inputs.pop("latent_image_keys", None)
        negative_inputs = {key: inputs.pop(key) for key in NEGATIVE_BATCH_KEYS if key in inputs}
        if not latent_inputs:  # no imagery in this batch: plain SFT on the text
            self._metrics[mode]["num_imagery"].append(0.0)
            result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if return_outputs:
                return result[0] * self.args.ce_weight, result[1]
            return result * self.args.ce_weight

        backbone = vision_backbone(model)
        if self.args.freeze_vision_tower:
            backbone.visual.eval()  # Trainer.train() puts the whole model back in train mode every step
        targets = self._latent_targets(model, latent_inputs, image_keys)
        pad_id = self.latent_spec.pad_id
        if self.args.latent_feedback == "self":
            feeding = feed_back_latents(model, inputs["input_ids"] == pad_id)
        else:
            vectors = targets.flatten(0, 1)
            if return_outputs:  # SFTTrainer then runs a second, logits-only forward that needs the vectors too
                vectors = torch.cat([vectors, vectors])
            feeding = inject_latents(model, pad_id, vectors)
        # the first forward is the loss one: SFTTrainer's second, with return_outputs, only recomputes logits
        with capture_last_hidden_state(model) as captured, feeding:
            result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        ce_loss = result[0] if return_outputs else result
        sim_loss, cosine = latent_similarity_loss(captured["hidden"], inputs["input_ids"], targets, pad_id,
                                                  self._target_center, self.args.latent_sim_centering == "both")
        norm_ratio = latent_norm_ratio(captured["hidden"], inputs["input_ids"], targets, pad_id)
        # As TRL does for its MoE aux loss: with a token count over the accumulation window, the CE is already
        # normalised for gradient accumulation while this per-micro-batch mean is not
        steps = self.current_gradient_accumulation_steps if num_items_in_batch is not None else 1
        loss = self.args.ce_weight * ce_loss + self.args.sim_weight * sim_loss / steps
        gather = self.accelerator.gather_for_metrics
        if self.args.latent_contrast_weight:
            contrast, margin = self._imagery_contrast(model, inputs, targets, captured["hidden"], negative_inputs)
            loss = loss + self.args.latent_contrast_weight * contrast / steps
            self._metrics[mode]["contrast_loss"].append(gather(contrast.detach()).mean().item())
            self._metrics[mode]["contrast_margin"].append(gather(margin).mean().item())
        self._metrics[mode]["ce_loss"].append(gather(ce_loss.detach()).mean().item())
        self._metrics[mode]["sim_loss"].append(gather(sim_loss.detach()).mean().item())
        self._metrics[mode]["cos_sim"].append(gather(cosine.detach()).mean().item())
        self._metrics[mode]["latent_norm_ratio"].append(gather(norm_ratio).mean().item())
        num_imagery = torch.tensor(float(targets.shape[0]), device=ce_loss.device)
        self._metrics[mode]["num_imagery"].append(gather(num_imagery).sum().item())
        return (loss, result[1]) if return_outputs else loss

    def _imagery_contrast(self, model: Any, inputs: dict[str, Any], targets: torch.Tensor, hidden: torch.Tensor,
                          negative_inputs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, margin)`` of the imagery contrast (:mod:`trl_latent.dift.contrast`): the batch runs once more with
        each row's imagery targets replaced by their negatives; ``hidden`` is the loss forward's last layer and
        ``negative_inputs`` the collator's counterfactual imagery (``counterfactual`` negatives).

        The second forward runs for every batch with imagery, whatever its labels, so that all ranks run the same
        number of forwards (ZeRO-3 gathers parameters inside them).
        """
        pad_id, latent_size = self.latent_spec.pad_id, self.latent_spec.latent_size
        input_ids, labels = inputs["input_ids"], inputs["labels"]
        images_per_row = ((input_ids == pad_id).sum(1) // latent_size).tolist()
        mask = continuation_mask(input_ids, labels, pad_id)
        if self.args.latent_contrast_span == "reasoning":
            mask = reasoning_mask(mask, labels, tokenizer_of(self.processing_class).decode)
        if self.args.latent_contrast_negatives == "counterfactual":
            negatives = self._latent_targets(
                model, {"latent_pixel_values": negative_inputs["latent_negative_pixel_values"],
                        "latent_image_grid_thw": negative_inputs["latent_negative_image_grid_thw"]},
                negative_inputs["latent_negative_image_keys"])
            rows = negative_inputs["latent_negative_rows"].to(targets.device)
        elif self.args.latent_contrast_negatives == "reversed":
            negatives, rows = reverse_within_rows(targets, images_per_row)
        else:
            negatives, donors = swap_between_rows(targets, images_per_row)
            rows = differing_rows(labels, mask, donors)
        with capture_last_hidden_state(model) as captured, inject_latents(model, pad_id, negatives.flatten(0, 1)):
            model(**{key: value for key, value in inputs.items() if key != "labels"}, logits_to_keep=1)
        head = _unwrap(model).get_output_embeddings()
        own = continuation_log_probs(head, hidden, labels, mask)
        negative = continuation_log_probs(head, captured["hidden"], labels, mask)
        return contrast_loss(own, negative, rows)

    def _latent_targets(self, model: Any, latent_inputs: dict[str, torch.Tensor], keys: tuple[str, ...] | None
                        ) -> torch.Tensor:
        """The batch's imagery targets ``[N, K, H]``, from the cache when every image is in it.

        A frozen tower gives every image the same targets at every epoch, so they are computed once
        (``cache_latent_targets``); a tower with any trainable parameter (``freeze_vision_tower=False``, LoRA on its
        modules) empties the cache and computes them every step.
        """
        tower = adapter_for(model).vision_tower(model)
        frozen = self.args.cache_latent_targets and keys is not None and not any(
            parameter.requires_grad for parameter in tower.parameters())
        if not frozen:
            self._target_cache.clear()
        elif all(key in self._target_cache for key in keys):
            return torch.stack([self._target_cache[key] for key in keys])
        targets = compute_latent_targets(
            model, latent_inputs["latent_pixel_values"], latent_inputs["latent_image_grid_thw"],
            self.latent_spec.latent_size,
        )
        if frozen:
            self._target_cache.update(zip(keys, targets))
        return targets

    def latent_card_details(self) -> dict[str, str]:
        span = SPAN_DESCRIPTIONS[self.args.latent_contrast_span]
        return {
            "Method": "DIFT (Dynamic-Imagery Fine-Tuning): text interleaved with latent imagery, " + (
                "self-fed (the model's own hidden states at the latent positions)"
                if self.args.latent_feedback == "self" else "teacher-forced"
            ),
            **latent_spec_details(self.model),
            "Loss": (
                f"{self.args.ce_weight} × CE(text; latent start/end supervised, pads excluded) + "
                f"{self.args.sim_weight} × mean(1 − cos({SIM_TERMS[self.args.latent_sim_centering]})) over latent "
                "positions"
                + (f" + {self.args.latent_contrast_weight} × softplus(log p({span} | "
                   f"{NEGATIVE_DESCRIPTIONS[self.args.latent_contrast_negatives]}) − log p({span} | own imagery))"
                   if self.args.latent_contrast_weight else "")
            ),
            **training_data_details(self.train_dataset, self.args.visual_options),
            **({"First-frame rows": f"{self._first_frame_rows} of {len(self.train_dataset)} training rows "
                                    f"(first_frame_share {self.args.first_frame_share}) saw only their video's first "
                                    "frame"} if self.args.first_frame_share else {}),
            "Vision tower": "frozen" if self.args.freeze_vision_tower else "trained",
        }


def _lacks_counterfactuals(dataset: Any) -> bool:
    """Whether a training set with known columns (a ``datasets.Dataset``) has no record with ``counterfactual_output``
    (a stream is not read ahead: its rows without one are left out of the contrast as they come)."""
    names = getattr(dataset, "column_names", None)
    if names is None:
        return False
    return "counterfactual_output" not in names or not any(dataset["counterfactual_output"])


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


@contextmanager
def capture_last_hidden_state(model: Any) -> Iterator[dict[str, torch.Tensor]]:
    """Keep, under ``"hidden"``, the backbone's last hidden state of the first forward run inside the block: the fused
    LM head that computes the loss never returns it."""
    captured: dict[str, torch.Tensor] = {}

    def keep(module: torch.nn.Module, args: tuple, output: Any) -> None:
        captured.setdefault("hidden", output.last_hidden_state)

    handle = vision_backbone(model).register_forward_hook(keep)
    try:
        yield captured
    finally:
        handle.remove()


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
    """Run the language model of every forward inside the block in lockstep rounds, as the inference loop feeds back.

    ``pad_mask [B, L]`` marks the ``<|latent_pad|>`` positions of the batch. Each row is cut before each of its pads,
    and round ``r`` runs every row's ``r``-th piece together (one batched pass per latent position, however the rows'
    pads are placed): the pieces of a round are right-padded to the longest, run through the language model with one
    KV cache, and masked so that each position sees exactly its own row's earlier positions. A row's pad input becomes
    the last-layer hidden state of the position before it (post final norm, through
    :func:`trl_latent.latents.feedback_vector`, as :func:`trl_latent.generation.generate_with_latents` feeds it), with
    its gradient. Positions are the ones the
    backbone computed for the whole sequence (``get_rope_index``), gathered per piece, so they equal a teacher-forced
    forward's. The hidden states are put back in sequence order, so callers (the fused LM head, the hidden-state hook)
    see one ordinary output. Yields the list the fed-back vectors are appended to, one ``[rows with an r-th pad, H]``
    tensor per round ``r >= 1``, rows in order.

    The rounds need a 4-D attention mask, so the attention must be ``sdpa`` or ``eager`` (not flash-attention), and
    gradient checkpointing cannot be on: transformers drops the cache of a checkpointed layer.
    """
    language_model = vision_backbone(model).language_model
    spec = get_latent_spec(model)
    gather_kwargs = adapter_for(model).gather_language_model_kwargs
    implementation = language_model.config._attn_implementation
    if implementation not in ("sdpa", "eager"):
        raise ValueError(f"latent_feedback='self' needs attn_implementation 'sdpa' or 'eager', not {implementation!r} "
                         "(its lockstep rounds use a 4-D attention mask)")
    if "sliding_attention" in (getattr(language_model.config, "layer_types", None) or ()):
        raise ValueError("latent_feedback='self' does not support sliding-window attention layers")
    original = language_model.forward
    own = "forward" in vars(language_model)
    fed_back: list[torch.Tensor] = []

    def forward(*, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, cache: Any = None, use_cache: bool | None = None,
                **kwargs: Any) -> BaseModelOutputWithPast:
        del use_cache  # the pieces always run through the cache; the caller's (training) forward keeps none
        if cache is not None or inputs_embeds.shape[:2] != pad_mask.shape:
            raise ValueError("self-fed latents run whole training sequences, without a cache of their own")
        rounds = _LockstepRounds(pad_mask.to(inputs_embeds.device), attention_mask)
        if position_ids is None:  # text-only: the whole-sequence arange, which the cache length no longer gives
            position_ids = torch.arange(rounds.length, device=inputs_embeds.device).expand(3, *pad_mask.shape)
        cache = DynamicCache(config=language_model.config)
        pieces: list[torch.Tensor] = []
        for r in range(rounds.count):
            valid, gather = rounds.index(r)
            embeds = inputs_embeds.gather(1, gather[..., None].expand(-1, -1, inputs_embeds.shape[-1]))
            if pieces:  # every row with an r-th pad starts this round's piece at it
                rows = rounds.lengths[:, r] > 0
                last = (rounds.lengths[:, r - 1] - 1).clamp(min=0)
                previous = pieces[-1][torch.arange(len(last), device=last.device), last]
                # blocks hold K pads each, so a row's (r-1)-th pad sits in slot (r-1) mod K
                fed_back.append(feedback_vector(previous[rows], spec, (r - 1) % spec.latent_size))
                first = embeds[:, 0].masked_scatter(rows[:, None], fed_back[-1].to(embeds.dtype))
                embeds = torch.cat([first[:, None], embeds[:, 1:]], dim=1)
            mask = rounds.mask(r, implementation, embeds.dtype)
            out = original(
                inputs_embeds=embeds,
                attention_mask=mask,
                position_ids=position_ids.gather(-1, gather.expand(position_ids.shape[0], -1, -1)),
                cache=cache,
                use_cache=True,
                **gather_kwargs(kwargs, gather, valid),
            )
            pieces.append(out.last_hidden_state)
        hidden = torch.cat(pieces, dim=1)
        return BaseModelOutputWithPast(last_hidden_state=hidden.gather(1, rounds.inverse[..., None].expand(
            -1, -1, hidden.shape[-1])))

    language_model.forward = forward
    try:
        yield fed_back
    finally:
        if own:
            language_model.forward = original
        else:
            del language_model.forward


class _LockstepRounds:
    """Where each round's pieces lie in a ``[B, L]`` batch cut before every ``<|latent_pad|>`` of each row.

    Round ``r`` of row ``b`` spans columns ``[starts[b, r], starts[b, r] + lengths[b, r])``: from its ``r``-th pad (the
    sequence start for ``r = 0``) to its next pad or the end; empty once the row has no more pads. One host sync
    (the round count and widths) per forward.
    """

    def __init__(self, pad_mask: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
        batch, self.length = pad_mask.shape
        if bool(pad_mask[:, 0].any()):
            raise ValueError("a sequence starts with <|latent_pad|>: there is no hidden state to feed back")
        columns = torch.arange(self.length, device=pad_mask.device)
        pads = torch.where(pad_mask, columns, self.length).sort(dim=1).values  # each row's pad columns, then L
        bounds = torch.cat([pads.new_zeros(batch, 1), pads, pads.new_full((batch, 1), self.length)], dim=1)
        widths = bounds.diff(dim=1)  # [B, max pads + 2]: the last is always empty
        self.count = int(pad_mask.sum(1).max()) + 1
        self.starts, self.lengths = bounds[:, : self.count], widths[:, : self.count]
        self.widths = self.lengths.amax(0).tolist()
        offsets = torch.tensor([0, *self.widths], device=pad_mask.device).cumsum(0)
        round_of = pad_mask.long().cumsum(1)  # a pad opens its round
        self.inverse = offsets[round_of] + columns - self.starts.gather(1, round_of)  # column -> concatenated rounds
        self.attention_mask = attention_mask.bool() if attention_mask is not None else None
        self.keys: list[torch.Tensor] = []  # each round's key validity, [B, width]
        self.steps = torch.arange(max(self.widths), device=pad_mask.device)

    def index(self, r: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(valid [B, W], columns [B, W])`` of round ``r``; padding entries point at the last column."""
        steps = self.steps[: self.widths[r]]
        valid = steps < self.lengths[:, r : r + 1]
        gather = (self.starts[:, r : r + 1] + steps).clamp(max=self.length - 1)
        if self.attention_mask is not None:
            valid = valid & self.attention_mask.gather(1, gather)
        self.keys.append(valid)
        return valid, gather

    def mask(self, r: int, implementation: str, dtype: torch.dtype) -> torch.Tensor:
        """``[B, 1, W, keys so far]``: earlier rounds' real keys, and this round's causally (after :meth:`index`)."""
        width = self.widths[r]
        causal = torch.ones(width, width, dtype=torch.bool, device=self.steps.device).tril()
        current = causal[None] & self.keys[-1][:, None, :]
        past = [keys[:, None, :].expand(-1, width, -1) for keys in self.keys[:-1]]
        allowed = torch.cat([*past, current], dim=-1)[:, None]
        if implementation == "sdpa":
            return allowed
        return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)
