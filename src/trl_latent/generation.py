"""The latent generation loop: decode text, and inside a latent block feed hidden states back as input embeddings.

When a row emits ``<|latent_start|>``, its next ``latent_size`` inputs are not tokens but the last-layer hidden state
of the previous position (the model "imagines" the image it learned to predict in DIFT); then ``<|latent_end|>`` is
forced and text decoding resumes. Each row keeps its own state, so rows entering, inside or leaving a block in the same
step never disturb each other, and a batch gives what its rows give one by one.

``generate`` of transformers cannot do this (it only ever feeds sampled token ids), so this is a small decode loop of
its own on the backbone + LM head, with the KV cache and explicit 3-D mRoPE position ids. Completion token ``t`` of a
row sits at the row's next position (what a teacher-forced forward of prompt + completion gives it) plus ``t`` on all
three axes, never at ``attention_mask.sum() + rope_deltas``: the two differ whenever a vision block reaches past the
text after it (long, low-fps video under transformers' own rule), and only the former matches training and recompute.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import StaticCache
from transformers.generation.logits_process import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from .latents import feedback_vector, inject_latents
from .models import adapter_for, apply_position_rule, position_rule
from .tokens import LatentSpec, _unwrap, get_latent_spec

_MULTIMODAL_KEYS = (
    "pixel_values",
    "pixel_values_videos",
    "image_grid_thw",
    "video_grid_thw",
    "second_per_grid_ts",
    "mm_token_type_ids",
)


@dataclass
class LatentGenerationOutput:
    """What one call of :func:`generate_with_latents` produced.

    ``completion_ids`` holds a latent block as start, K pad ids, end; ``latent_embeds`` holds, at those pad positions,
    the vectors that were fed in (zeros elsewhere). Re-inserting them with :func:`trl_latent.latents.inject_latents`
    reproduces the sampled sequence exactly, which is what 4DRL's log-prob recomputation relies on.
    """

    sequences: torch.LongTensor  # [B, P + C]: the prompt as given, then the completion
    completion_ids: torch.LongTensor  # [B, C], right-padded with the pad id
    completion_mask: torch.BoolTensor  # [B, C], True up to and including the first EOS
    latent_embeds: torch.Tensor  # [B, C, H]
    latent_mask: torch.BoolTensor  # [B, C]
    logits: torch.Tensor | None = None  # [B, C, V] raw next-token logits at each step, when asked for

    @property
    def num_latent_blocks(self) -> torch.LongTensor:
        return (self.latent_mask[:, 1:] & ~self.latent_mask[:, :-1]).sum(-1) + self.latent_mask[:, 0].long()


def _as_id_list(value: int | Iterable[int] | None) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    return [int(v) for v in value]


def rope_positions(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, multimodal: dict[str, Any]
) -> tuple[torch.Tensor, torch.Tensor]:
    """3-D mRoPE ``position_ids [3, B, L]`` of a (padded) batch and each row's next position ``[B]``.

    The rule is the one the model's config records (:func:`trl_latent.models.position_rule`), so these are the
    positions the model's own patched forward would use. The next position is where a text token appended to the row
    sits in a teacher-forced forward of prompt + completion; the loop continues from there.
    """
    if multimodal.get("image_grid_thw") is not None or multimodal.get("video_grid_thw") is not None:
        return adapter_for(model).positions(input_ids, attention_mask, multimodal, position_rule(model))
    text = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    return text.unsqueeze(0).expand(3, -1, -1), attention_mask.long().sum(-1)


class _Sampler:
    """Greedy or sampled choice of the next token with the standard transformers warpers."""

    def __init__(
        self,
        do_sample: bool,
        temperature: float,
        top_k: int,
        top_p: float,
        repetition_penalty: float,
        suppress_ids: list[int],
        generator: torch.Generator | None,
        logits_processor: LogitsProcessorList | None,
    ) -> None:
        self.do_sample = do_sample
        self.generator = generator
        self.suppress_ids = sorted(set(suppress_ids))
        self._suppress: torch.Tensor | None = None  # the ids on the logits' device, made once
        self.processors = LogitsProcessorList(logits_processor or [])
        if repetition_penalty != 1.0:
            self.processors.append(RepetitionPenaltyLogitsProcessor(repetition_penalty))
        if do_sample:
            if temperature <= 0:
                raise ValueError(f"temperature must be > 0 when sampling, got {temperature}")
            if temperature != 1.0:
                self.processors.append(TemperatureLogitsWarper(temperature))
            if top_k and top_k > 0:
                self.processors.append(TopKLogitsWarper(top_k))
            if top_p < 1.0:
                self.processors.append(TopPLogitsWarper(top_p))

    def __call__(self, logits: torch.Tensor, context_ids: torch.Tensor) -> torch.Tensor:
        scores = logits.float()  # the same tensor when logits are float32: nothing below may write into it
        if self.suppress_ids:
            if self._suppress is None:
                self._suppress = torch.tensor(self.suppress_ids, device=logits.device)
            scores = scores.index_fill(1, self._suppress, float("-inf"))
        elif self.processors:
            scores = scores.clone()  # a processor may work in place
        if self.processors:
            scores = self.processors(context_ids, scores)
        if not self.do_sample:
            return scores.argmax(dim=-1)
        probs = torch.softmax(scores, dim=-1)
        return torch.multinomial(probs, 1, generator=self.generator).squeeze(-1)


def _split_multimodal(kwargs: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(kwargs) - set(_MULTIMODAL_KEYS))
    if unknown:
        raise TypeError(f"generate_with_latents got unexpected arguments {unknown}; multimodal inputs are {_MULTIMODAL_KEYS}")
    return {key: value for key, value in kwargs.items() if value is not None}


@torch.no_grad()
def generate_with_latents(
    model: Any,
    input_ids: torch.LongTensor,
    attention_mask: torch.Tensor | None = None,
    *,
    max_new_tokens: int = 256,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
    eos_token_id: int | Iterable[int] | None = None,
    pad_token_id: int | None = None,
    suppress_token_ids: Iterable[int] = (),
    generator: torch.Generator | None = None,
    logits_processor: LogitsProcessorList | None = None,
    use_cache: bool = True,
    spec: LatentSpec | None = None,
    output_logits: bool = False,
    latent_inputs: Sequence[torch.Tensor | None] | None = None,
    cache_implementation: str = "dynamic",
    cuda_graph: bool = False,
    **multimodal: Any,
) -> LatentGenerationOutput:
    """Generate from left-padded prompts, running a latent block wherever the model emits ``<|latent_start|>``.

    ``model`` is a Qwen2.5-VL (plain, PEFT-wrapped, or under a DDP/DeepSpeed wrapper); ``multimodal`` is what its
    processor returned besides ``input_ids``/``attention_mask``; ``logits_processor`` runs before the sampling warpers,
    as in ``transformers``' ``generate``. With a stock checkpoint (no latent settings and no
    ``spec``) this is ordinary decoding. ``use_cache=False`` re-runs the whole sequence every step with the latent
    vectors injected; it is the slow reference the cached path is tested against.

    ``cache_implementation="static"`` decodes into a preallocated ``StaticCache`` (kept per model and reused by the
    next call of the same shape), so every decode step, latent steps included, has the same shapes; with
    ``cuda_graph`` (CUDA only) that step is captured once as a CUDA graph and replayed, which removes the per-layer
    launch overhead that bounds small-batch decoding on a GPU. Both give the dynamic loop's tokens.
    """
    if cache_implementation not in ("dynamic", "static"):
        raise ValueError(f"cache_implementation must be 'dynamic' or 'static', got {cache_implementation!r}")
    static = cache_implementation == "static"
    if static and not use_cache:
        raise ValueError("cache_implementation='static' needs use_cache=True")
    if cuda_graph and not (static and input_ids.device.type == "cuda"):
        raise ValueError("cuda_graph needs cache_implementation='static' and CUDA inputs")
    base = _unwrap(model)
    backbone, lm_head, embed = base.model, base.get_output_embeddings(), base.get_input_embeddings()
    spec = spec if spec is not None else get_latent_spec(base)
    multimodal = _split_multimodal(multimodal)
    generation_config = getattr(base, "generation_config", None)
    eos_ids = _as_id_list(eos_token_id if eos_token_id is not None else getattr(generation_config, "eos_token_id", None))
    if pad_token_id is None:
        pad_token_id = getattr(generation_config, "pad_token_id", None)
    if pad_token_id is None:
        if not eos_ids:
            raise ValueError("generate_with_latents needs pad_token_id or eos_token_id (none set in generation_config)")
        pad_token_id = eos_ids[0]

    device = input_ids.device
    batch_size = input_ids.shape[0]
    attention_mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(device)
    if spec is not None and bool((input_ids[attention_mask.bool()] == spec.pad_id).any()):
        raise ValueError("prompts must not contain <|latent_pad|>: latent vectors are produced, never given, here")

    suppress = list(suppress_token_ids) + ([spec.pad_id, spec.end_id] if spec is not None else [])
    sampler = _Sampler(
        do_sample, temperature, top_k, top_p, repetition_penalty, suppress, generator, logits_processor
    )
    eos = torch.tensor(eos_ids, device=device, dtype=torch.long)

    apply_position_rule(base)  # the model's own forward (the teacher-forced reference) must use the same rule
    positions, next_position = rope_positions(base, input_ids, attention_mask, multimodal)
    next_position = next_position.unsqueeze(1)  # [B, 1]: where a teacher-forced completion starts, row by row
    hidden_size = embed.weight.shape[1]
    prompt_length = input_ids.shape[1]
    # prompt + completion in one buffer: the processors read a growing prefix of it without a copy per step
    sequence = torch.full((batch_size, prompt_length + max_new_tokens), pad_token_id, dtype=torch.long, device=device)
    sequence[:, :prompt_length] = input_ids
    completion = sequence[:, prompt_length:]
    latent_embeds = torch.zeros(batch_size, max_new_tokens, hidden_size, dtype=embed.weight.dtype, device=device)
    latent_mask = torch.zeros(batch_size, max_new_tokens, dtype=torch.bool, device=device)
    step_logits = [] if output_logits else None
    given, given_count = _given_latents(latent_inputs, batch_size, hidden_size, latent_embeds.dtype, device)
    fed_count = torch.zeros(batch_size, dtype=torch.long, device=device)

    remaining = torch.zeros(batch_size, dtype=torch.long, device=device)  # latent steps still to feed
    force_end = torch.zeros(batch_size, dtype=torch.bool, device=device)
    finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
    if spec is not None:
        remaining[input_ids[:, -1] == spec.start_id] = spec.latent_size

    decoder = _StaticDecoder.for_model(base, backbone.language_model, attention_mask, max_new_tokens, cuda_graph) \
        if static else None
    out = backbone(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
        cache=decoder.cache if static else None, use_cache=use_cache, **multimodal,
    )
    cache = out.cache if use_cache else None
    hidden = out.last_hidden_state[:, -1]
    steps = 0
    for t in range(max_new_tokens):
        logits = lm_head(hidden)
        if step_logits is not None:
            step_logits.append(logits.float())
        in_latent = (remaining > 0) & ~finished
        ending = force_end & ~finished
        sampled = sampler(logits, sequence[:, : prompt_length + t])
        token = torch.where(in_latent, spec.pad_id if spec is not None else pad_token_id, sampled)
        if spec is not None:
            token = torch.where(ending, spec.end_id, token)
        token = torch.where(finished, pad_token_id, token)
        completion[:, t] = token
        latent_mask[:, t] = in_latent
        slot = None if spec is None else (spec.latent_size - remaining).clamp(0, spec.latent_size - 1)
        fed = feedback_vector(hidden, spec, slot).to(latent_embeds.dtype)
        if given is not None:
            use_given = in_latent & (fed_count < given_count)
            slot = given[torch.arange(batch_size, device=device), fed_count.clamp(max=given.shape[1] - 1)]
            fed = torch.where(use_given[:, None], slot, fed)
            fed_count = fed_count + in_latent.long()
        latent_embeds[:, t] = torch.where(in_latent[:, None], fed, latent_embeds[:, t])
        steps = t + 1

        # advance each row's state machine
        force_end = in_latent & (remaining == 1)
        remaining = torch.where(in_latent, remaining - 1, remaining)
        if spec is not None:
            opened = ~in_latent & ~ending & ~finished & (token == spec.start_id)
            remaining = torch.where(opened, spec.latent_size, remaining)
        finished = finished | (~in_latent & ~ending & torch.isin(token, eos))
        if bool(finished.all()) or t == max_new_tokens - 1:
            break

        if use_cache:
            step_embeds = torch.where(in_latent[:, None], fed.to(embed.weight.dtype), embed(token)).unsqueeze(1)
            step_positions = (next_position + t).view(1, batch_size, 1).expand(3, -1, -1)
            if static:
                hidden = decoder(step_embeds, step_positions, prompt_length + t)
                continue
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones(batch_size, 1)], dim=1)
            out = backbone(
                inputs_embeds=step_embeds,
                attention_mask=attention_mask,
                position_ids=step_positions,
                cache=cache,
                use_cache=True,
            )
            cache = out.cache
        else:
            out = _full_forward(
                backbone, input_ids, attention_mask, completion[:, : t + 1], latent_embeds[:, : t + 1],
                latent_mask[:, : t + 1], spec, multimodal,
            )
        hidden = out.last_hidden_state[:, -1]

    completion_ids = completion[:, :steps]  # a view of ``sequence``; ``sequences`` below is its prefix
    is_eos = torch.isin(completion_ids, eos) & ~latent_mask[:, :steps]
    after_eos = (is_eos.long().cumsum(-1) - is_eos.long()) > 0
    return LatentGenerationOutput(
        sequences=sequence[:, : prompt_length + steps],
        completion_ids=completion_ids,
        completion_mask=~after_eos,
        latent_embeds=latent_embeds[:, :steps],
        latent_mask=latent_mask[:, :steps],
        logits=torch.stack(step_logits, dim=1) if step_logits is not None else None,
    )


def _given_latents(
    latent_inputs: Sequence[torch.Tensor | None] | None, batch_size: int, hidden_size: int, dtype: torch.dtype,
    device: torch.device,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """``latent_inputs`` as one zero-padded ``[B, N, H]`` tensor and each row's count ``[B]`` (``None`` when unset)."""
    counts = torch.zeros(batch_size, dtype=torch.long, device=device)
    if latent_inputs is None:
        return None, counts
    if len(latent_inputs) != batch_size:
        raise ValueError(f"latent_inputs has {len(latent_inputs)} rows, the batch {batch_size}")
    rows = [torch.zeros(0, hidden_size) if v is None else v.reshape(-1, v.shape[-1]) for v in latent_inputs]
    for row, vectors in enumerate(rows):
        if vectors.shape[-1] != hidden_size:
            raise ValueError(f"latent_inputs row {row} has vectors of size {vectors.shape[-1]}, the model {hidden_size}")
    given = torch.zeros(batch_size, max(1, max(v.shape[0] for v in rows)), hidden_size, dtype=dtype, device=device)
    for row, vectors in enumerate(rows):
        given[row, : vectors.shape[0]] = vectors.to(device=device, dtype=dtype)
        counts[row] = vectors.shape[0]
    return given, counts


class _StaticDecoder:
    """Decode steps into a ``StaticCache``: one new position per row, attending through a 4-D mask over the cache's
    slots (the prompt's real tokens and every completion slot up to the one being written).

    The cache, the step's input buffers and, with ``cuda_graph``, the step captured as a CUDA graph are kept per model
    and shape, so the next call of that shape resets the cache in place and replays the graph.
    """

    def __init__(self, language_model: Any, length: int, cuda_graph: bool) -> None:
        self.language_model = language_model
        self.cache = StaticCache(config=language_model.config, max_cache_len=length)
        self.implementation = language_model.config._attn_implementation
        if self.implementation not in ("sdpa", "eager"):
            raise ValueError(f"cache_implementation='static' needs 'sdpa' or 'eager' attention, not "
                             f"{self.implementation!r}")
        self.cuda_graph = cuda_graph
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: dict[str, torch.Tensor] = {}
        self.output: torch.Tensor | None = None
        self.valid: torch.Tensor | None = None  # [B, length]: the slots a query may see, set per call
        self.slots: torch.Tensor | None = None

    @classmethod
    def for_model(cls, base: Any, language_model: Any, attention_mask: torch.Tensor, max_new_tokens: int,
                  cuda_graph: bool) -> _StaticDecoder:
        """The model's decoder for this batch shape, reset; made (and kept while the model lives) on first use."""
        batch_size, length = attention_mask.shape[0], attention_mask.shape[1] + max_new_tokens
        key = (batch_size, length, language_model.config._attn_implementation, cuda_graph)
        kept = _DECODERS.setdefault(base, {})
        decoder = kept.get(key)
        if decoder is None:
            decoder = kept[key] = cls(language_model, length, cuda_graph)
        decoder.cache.reset()
        # real prompt tokens and all completion slots; the step's own slot bounds what a query sees (``_mask``)
        decoder.valid = torch.cat([attention_mask.bool(), attention_mask.new_ones(batch_size, max_new_tokens,
                                                                                    dtype=torch.bool)], dim=1)
        decoder.slots = torch.arange(length, device=attention_mask.device)
        return decoder

    def _mask(self, slot: int, dtype: torch.dtype) -> torch.Tensor:
        allowed = (self.valid & (self.slots <= slot))[:, None, None, :]
        if self.implementation == "sdpa":
            return allowed
        return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)

    def _step(self, embeds: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = self.language_model(inputs_embeds=embeds, attention_mask=mask,
                                  position_ids=positions, cache=self.cache, use_cache=True)
        return out.last_hidden_state[:, -1]

    def __call__(self, embeds: torch.Tensor, positions: torch.Tensor, slot: int) -> torch.Tensor:
        """The last-layer hidden state ``[B, H]`` of the position written at cache ``slot``."""
        mask = self._mask(slot, embeds.dtype)
        if not self.cuda_graph:
            return self._step(embeds, positions, mask)
        if self.graph is None:
            self._capture(embeds, positions.contiguous(), mask)
        self.inputs["embeds"].copy_(embeds)
        self.inputs["positions"].copy_(positions)
        self.inputs["mask"].copy_(mask)
        self.graph.replay()
        return self.output.clone()

    def _capture(self, embeds: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor) -> None:
        """Capture one step as a CUDA graph on static input buffers.

        The warm-up runs that capture needs write this step's slot and advance the cache's lengths; the lengths are
        put back, and the slot is written again by the first replay.
        """
        self.inputs = {"embeds": embeds.clone(), "positions": positions.clone(), "mask": mask.clone()}
        lengths = [layer.cumulative_length.clone() for layer in self.cache.layers]
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self._step(self.inputs["embeds"], self.inputs["positions"], self.inputs["mask"])
                for layer, length in zip(self.cache.layers, lengths):
                    layer.cumulative_length.copy_(length)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.output = self._step(self.inputs["embeds"], self.inputs["positions"], self.inputs["mask"])
        for layer, length in zip(self.cache.layers, lengths):  # capture records, it does not run
            layer.cumulative_length.copy_(length)
        self.graph = graph


# each model's static decoders by shape; weak, so they go with the model (and are never deep-copied with it)
_DECODERS: weakref.WeakKeyDictionary[Any, dict[tuple, _StaticDecoder]] = weakref.WeakKeyDictionary()


def _full_forward(
    backbone: Any,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    latent_embeds: torch.Tensor,
    latent_mask: torch.Tensor,
    spec: LatentSpec | None,
    multimodal: dict[str, Any],
) -> Any:
    """Run prompt + completion from scratch, the completion's latent vectors injected at its pad positions."""
    ids = torch.cat([prompt_ids, completion_ids], dim=1)
    mask = torch.cat([prompt_mask, prompt_mask.new_ones(completion_ids.shape)], dim=1)
    multimodal = dict(multimodal)
    if "mm_token_type_ids" in multimodal:
        types = multimodal["mm_token_type_ids"]
        multimodal["mm_token_type_ids"] = torch.cat([types, types.new_zeros(completion_ids.shape)], dim=1)
    positions, _ = rope_positions(backbone, ids, mask, multimodal)
    vectors = latent_embeds[latent_mask]
    if spec is None or vectors.numel() == 0:
        return backbone(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False, **multimodal)
    with inject_latents(backbone, spec.pad_id, vectors):
        return backbone(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False, **multimodal)
