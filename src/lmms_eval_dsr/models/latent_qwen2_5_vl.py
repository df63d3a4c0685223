"""``latent_qwen2_5_vl``: an lmms-eval model for any local Qwen2.5-VL checkpoint, trl-latent's or stock.

A checkpoint whose config carries latent settings (ours, or the released 4DThinker ones) generates with
:func:`trl_latent.generation.generate_with_latents`, so a ``<|latent_start|>`` it emits is followed by K fed-back
hidden states instead of sampled tokens; a stock checkpoint uses ``model.generate``. Latent blocks stay visible in the
returned text (start, K pads, end) so tasks can count them per sample; every other special token is dropped.

Positions follow the checkpoint's recorded ``mrope_position_rule`` (Qwen's reference rule when it records none, as
for stock and released checkpoints), installed in the model so ``model.generate`` and the latent loop agree; the
``mrope_position_rule`` model arg overrides it (``upstream``: the installed transformers' rule).

Usage: ``lmms-eval --model latent_qwen2_5_vl --model_args pretrained=/path/ckpt,dtype=bfloat16,max_frames=50 …``.
Sampling: ``--gen_kwargs temperature=0.7,top_p=0.9,seed=1`` (greedy whenever temperature is 0). Videos given as a
``{"type": "video", "rule": …}`` dict are sampled by that protocol's frame rule (``lmms_eval_dsr.visuals.RULES``);
``errors: wrong`` in the generation settings scores a question whose inference fails as wrong instead of aborting;
``sampling_defaults: checkpoint`` takes unset ``top_k`` / ``repetition_penalty`` from the checkpoint's generation config.
``save_latents=<folder>`` keeps what a latent checkpoint fed back at its latent positions, per question: lmms-eval's
samples log the text, not these vectors, and analyses of the imagery (swapping it between questions, probing it) need
exactly the ones behind each logged answer (:data:`LATENTS_FILE`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lmms_eval.api.instance import GenerationResult, Instance, TokenCounts
from lmms_eval.api.model import lmms
from loguru import logger
from PIL import Image
from tqdm import tqdm
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

from lmms_eval_dsr.media import (
    SampledVideo,
    is_image_path,
    read_frames,
    read_video,
    read_video_qwen,
    read_video_release,
)
from lmms_eval_dsr.scoring import INFERENCE_FAILED
from lmms_eval_dsr.visuals import RULES, is_frame_video, is_ruled_video
from trl_latent.generation import generate_with_latents
from trl_latent.models import FAMILIES, apply_position_rule, video_budget
from trl_latent.tokens import LatentSpec, get_latent_spec

LATENTS_FILE = "{task}.rank{rank}.pt"
"""Under ``save_latents``: ``torch.save`` of ``{doc_id: [fed latents [N, H] float32, one per repeat]}`` per task and
process (N counts every latent position of the completion, also after the task's stop string)."""

_DTYPES = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float32": torch.float32, "fp32": torch.float32,
           "float16": torch.float16, "fp16": torch.float16}


def _decode(tokenizer: Any, ids: Sequence[int], keep_ids: set[int], drop_ids: set[int]) -> str:
    """Text of completion ids without special tokens except the latent ones (kept so latent blocks are countable)."""
    kept = [i for i in ids if i in keep_ids or i not in drop_ids]
    return tokenizer.decode(kept, skip_special_tokens=False)


def _cut_at_stop(text: str, until: Sequence[str]) -> str:
    """lmms-eval's convention: the text before the first stop string."""
    for stop in until:
        if stop:
            text = text.split(stop, 1)[0]
    return text


class LatentQwen2_5_VL(lmms):
    """Qwen2.5-VL with the latent generation loop when the checkpoint has latent tokens (a simple lmms-eval model)."""

    is_simple = True

    def __init__(
        self,
        pretrained: str,
        device: str | None = None,
        device_map: str | None = None,
        dtype: str = "bfloat16",
        batch_size: int | str = 1,
        max_batch_size: int | None = None,
        attn_implementation: str | None = None,
        fps: float = 1.0,
        max_frames: int = 50,
        min_pixels: int = 28 * 28,
        max_pixels: int = 256 * 28 * 28,
        system_prompt: str | None = None,
        mrope_position_rule: str | None = None,
        save_latents: str | None = None,
    ) -> None:
        super().__init__()
        if str(dtype) not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        if float(fps) <= 0 or int(max_frames) < 1:
            raise ValueError(f"fps must be > 0 and max_frames >= 1, got fps={fps}, max_frames={max_frames}")
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        load_kwargs: dict[str, Any] = {"dtype": _DTYPES[str(dtype)], "device_map": device_map or device}
        if attn_implementation:
            load_kwargs["attn_implementation"] = attn_implementation
        self._check_family(AutoConfig.from_pretrained(pretrained).model_type)
        self.model = AutoModelForImageTextToText.from_pretrained(pretrained, **load_kwargs).eval()
        apply_position_rule(self.model, mrope_position_rule or None)
        self.processor = AutoProcessor.from_pretrained(pretrained)
        self.processor.tokenizer.padding_side = "left"
        self.spec: LatentSpec | None = get_latent_spec(self.model)
        self.batch_size_per_gpu = int(batch_size) if str(batch_size).isdigit() else 1
        self.fps, self.max_frames = float(fps), int(max_frames)
        self.pixel_budget = {"size": {"shortest_edge": int(min_pixels), "longest_edge": int(max_pixels)}}
        self.system_prompt = self._resolve_system_prompt(system_prompt) if system_prompt else None
        tokenizer = self.processor.tokenizer
        self._latent_ids = set(self.spec.special_ids) if self.spec is not None else set()
        self._special_ids = set(tokenizer.all_special_ids)
        if save_latents and self.spec is None:
            raise ValueError(f"save_latents={save_latents}: {pretrained} has no latent tokens, so nothing is fed back")
        self.save_latents = Path(save_latents) if save_latents else None
        self._fed: dict[str, dict[int, list[torch.Tensor]]] = {}

    families: tuple[str, ...] = ("qwen2_5_vl",)
    """The ``model_type`` values this model id loads (``latent_vlm``: every family trl-latent supports)."""

    def _check_family(self, model_type: str) -> None:
        if model_type not in self.families:
            hint = " (use --model latent_vlm)" if model_type in FAMILIES else f"; supported: {', '.join(FAMILIES)}"
            raise ValueError(f"{type(self).__name__} loads {', '.join(self.families)} checkpoints, not {model_type!r}{hint}")

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    # ----- inputs -------------------------------------------------------------------------------------------------
    def _load_visuals(self, visuals: Sequence[Any]) -> tuple[list[dict[str, Any]], list[Image.Image], list[SampledVideo]]:
        """Message content blocks plus the images and videos they stand for, in order."""
        content, images, videos = [], [], []
        for visual in visuals or []:
            if isinstance(visual, Image.Image) or is_image_path(visual):
                images.append(visual.convert("RGB") if isinstance(visual, Image.Image) else Image.open(visual).convert("RGB"))
                content.append({"type": "image"})
            elif is_frame_video(visual):
                frames = visual["frames"]
                cap = len(frames) if visual.get("all_frames") else self.max_frames
                video = read_frames(frames, float(visual.get("fps", self.fps)), cap)
                if visual.get("pixels"):
                    video = video.fitted(*visual["pixels"])
                videos.append(video)
                content.append({"type": "video"})
            elif is_ruled_video(visual):
                read = read_video_qwen if visual["rule"] == "qwen" else read_video_release
                videos.append(read(visual["path"], **RULES[visual["rule"]]))
                content.append({"type": "video"})
            elif isinstance(visual, str):
                videos.append(read_video(visual, self.fps, self.max_frames))
                content.append({"type": "video"})
            else:
                raise TypeError(f"latent_qwen2_5_vl cannot read a visual of type {type(visual).__name__}")
        return content, images, videos

    def _build_inputs(self, contexts: list[str], visual_lists: list[Sequence[Any]]) -> dict[str, Any]:
        texts, images, videos = [], [], []
        for context, visuals in zip(contexts, visual_lists):
            content, row_images, row_videos = self._load_visuals(visuals)
            messages = [{"role": "user", "content": [*content, {"type": "text", "text": context}]}]
            if self.system_prompt:
                messages.insert(0, {"role": "system", "content": [{"type": "text", "text": self.system_prompt}]})
            texts.append(self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
            images += row_images
            videos += row_videos
        media: dict[str, Any] = {}
        if images:
            media["images"] = images
        if videos:
            media["videos"] = [v.frames for v in videos]
            media["video_metadata"] = [{"fps": v.fps, "total_num_frames": len(v.frames),
                                        "frames_indices": list(range(len(v.frames)))} for v in videos]
        budget = self._budget(videos)
        if videos:  # frames are fitted one by one already; the family's video budget keeps them as they are
            size = budget["size"]
            media["videos_kwargs"] = video_budget(self.processor, size["shortest_edge"], size["longest_edge"],
                                                  max(len(v.frames) for v in videos))
        inputs = self.processor(text=texts, padding=True, return_tensors="pt", images_kwargs=budget, **media)
        return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}

    def _budget(self, videos: Sequence[SampledVideo]) -> dict[str, Any]:
        """The processor's pixel range: the model's, widened to hold frames a protocol already fitted to its own range
        (already 28-multiples inside it, so the processor leaves them as they are)."""
        low, high = self.pixel_budget["size"]["shortest_edge"], self.pixel_budget["size"]["longest_edge"]
        for video in videos:
            if video.pixels is not None:
                low, high = min(low, video.pixels[0]), max(high, video.pixels[1])
        return {"size": {"shortest_edge": low, "longest_edge": high}}

    # ----- generation ---------------------------------------------------------------------------------------------
    def _generate(self, inputs: dict[str, Any], gen_kwargs: dict[str, Any]
                  ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor] | None]:
        """Completion ids ``[B, C]``, their mask (True up to and including EOS) and each row's fed-back latents
        ``[N, H]`` (``None`` for a stock checkpoint)."""
        temperature = float(gen_kwargs.get("temperature") or 0.0)
        do_sample = temperature > 0
        if int(gen_kwargs.get("num_beams", 1) or 1) != 1:
            raise ValueError("latent_qwen2_5_vl decodes one beam (num_beams=1); beam search has no latent loop")
        tokenizer = self.processor.tokenizer
        eos_ids = self.model.generation_config.eos_token_id or tokenizer.eos_token_id
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        sampling = dict(
            max_new_tokens=int(gen_kwargs.get("max_new_tokens", 128)),
            do_sample=do_sample,
            temperature=temperature if do_sample else 1.0,
            top_p=float(gen_kwargs.get("top_p") or 1.0) if do_sample else 1.0,
            repetition_penalty=float(self._setting(gen_kwargs, "repetition_penalty") or 1.0),
            eos_token_id=eos_ids,
            pad_token_id=pad_id,
        )
        top_k = int(self._setting(gen_kwargs, "top_k") or 0) if do_sample else 0
        if self.spec is not None:
            out = generate_with_latents(self.model, spec=self.spec, top_k=top_k, **sampling, **inputs)
            fed = [embeds[latent & kept] for embeds, latent, kept in
                   zip(out.latent_embeds, out.latent_mask, out.completion_mask)]
            return out.completion_ids, out.completion_mask, fed
        prompt_length = inputs["input_ids"].shape[1]
        sequences = self.model.generate(**inputs, **sampling, top_k=top_k or None)
        completion = sequences[:, prompt_length:]
        eos = torch.tensor(eos_ids if isinstance(eos_ids, list) else [eos_ids], device=completion.device)
        is_eos = torch.isin(completion, eos)
        return completion, (is_eos.long().cumsum(-1) - is_eos.long()) == 0, None

    def _setting(self, gen_kwargs: dict[str, Any], name: str) -> Any:
        """``top_k`` / ``repetition_penalty`` as the task asks; unset, off (0 / 1.0) unless the task says
        ``sampling_defaults: checkpoint``, which takes them from the checkpoint's ``generation_config`` as a bare
        ``model.generate`` does (the 4DThinker release's and Dyn-Bench's evaluations)."""
        source = gen_kwargs.get("sampling_defaults")
        if source not in (None, "checkpoint"):
            raise ValueError(f"sampling_defaults must be 'checkpoint' or unset, got {source!r}")
        value = gen_kwargs.get(name)
        if value is None and source == "checkpoint":
            value = getattr(self.model.generation_config, name, None)
        return value

    def generate_until(self, requests: list[Instance]) -> list[GenerationResult]:
        results: list[GenerationResult | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(repr(sorted(request.args[1].items())), []).append(index)
        progress = tqdm(total=len(requests), disable=self.rank != 0, desc="latent_qwen2_5_vl")
        for indices in groups.values():
            seed = requests[indices[0]].args[1].get("seed")
            if seed is not None:  # once per run and settings: repeats of a question (lmms-eval --repeats) then differ
                torch.manual_seed(int(seed))
            errors_as_wrong = requests[indices[0]].args[1].get("errors") == "wrong"
            for start in range(0, len(indices), self.batch_size_per_gpu):
                batch = indices[start : start + self.batch_size_per_gpu]
                generate = self._generate_each_or_empty if errors_as_wrong else self._generate_batch
                for index, result in zip(batch, generate([requests[i] for i in batch])):
                    results[index] = result
                progress.update(len(batch))
        progress.close()
        self._write_fed()
        return results  # type: ignore[return-value]

    def _write_fed(self) -> None:
        """Each task's fed latents so far under ``save_latents`` (:data:`LATENTS_FILE`)."""
        if self.save_latents is None:
            return
        self.save_latents.mkdir(parents=True, exist_ok=True)
        for task, by_doc in self._fed.items():
            torch.save(by_doc, self.save_latents / LATENTS_FILE.format(task=task, rank=self.rank))

    def _generate_each_or_empty(self, requests: list[Instance]) -> list[GenerationResult]:
        """The batch; if it fails, each question alone, and no answer (scored wrong) for a question that still
        fails, marked :data:`~lmms_eval_dsr.scoring.INFERENCE_FAILED` so the task counts it. This is how the 4DThinker
        release and Dyn-Bench treat an inference exception (``errors: wrong`` in those tasks)."""
        try:
            return self._generate_batch(requests)
        except Exception as error:  # noqa: BLE001 - the protocol counts any inference failure as a wrong answer
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if len(requests) > 1:
                return [result for request in requests for result in self._generate_each_or_empty([request])]
            _, _, _, doc_id, task, _ = requests[0].args
            logger.exception(f"{task} doc {doc_id}: inference failed; scored as a wrong answer (errors: wrong)")
            text = f"{INFERENCE_FAILED} {type(error).__name__}: {error}"
            return [GenerationResult(text=text, token_counts=TokenCounts(input_tokens=0, output_tokens=0))]

    def _generate_batch(self, requests: list[Instance]) -> list[GenerationResult]:
        contexts, visual_lists, docs = [], [], []
        for request in requests:
            context, _, doc_to_visual, doc_id, task, split = request.args
            docs.append((task, doc_id))
            contexts.append(context)
            visual_lists.append(doc_to_visual(self.task_dict[task][split][doc_id]))
        gen_kwargs = dict(requests[0].args[1])
        gen_kwargs.pop("errors", None)
        until = gen_kwargs.pop("until", None) or []
        until = [until] if isinstance(until, str) else list(until)
        inputs = self._build_inputs(contexts, visual_lists)
        completion, mask, fed = self._generate(inputs, gen_kwargs)
        if self.save_latents is not None and fed is not None:
            for (task, doc_id), vectors in zip(docs, fed):
                self._fed.setdefault(task, {}).setdefault(doc_id, []).append(vectors.float().cpu())
        prompt_lengths = inputs["attention_mask"].sum(-1).tolist()
        tokenizer = self.processor.tokenizer
        outputs = []
        for row, prompt_length in zip(range(completion.shape[0]), prompt_lengths):
            ids = completion[row][mask[row]].tolist()
            text = _cut_at_stop(_decode(tokenizer, ids, self._latent_ids, self._special_ids), until)
            counts = TokenCounts(input_tokens=int(prompt_length), output_tokens=len(ids))
            outputs.append(GenerationResult(text=text, token_counts=counts))
        return outputs

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        raise NotImplementedError("latent_qwen2_5_vl only generates; the trl-latent benchmarks are generation tasks")

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError("latent_qwen2_5_vl does not implement multi-round generation")
