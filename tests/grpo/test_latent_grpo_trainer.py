"""LatentGRPOTrainer on the tiny Qwen2.5-VL: masks, exact log-prob recomputation, gradients, loss types, PEFT."""

from __future__ import annotations

import copy

import pytest
import torch
from .helpers import QUESTION, force_latent_blocks, write_rl_jsonl
from datasets import Dataset
from tiny_inputs import random_image
from trl import GRPOConfig, GRPOTrainer

from trl_latent.data import build_prompt, load_records
from trl_latent.grpo import LatentGRPOConfig, LatentGRPOTrainer
from trl_latent.grpo.latent_grpo_trainer import _RowBatch

LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")


def config(tmp_path, **overrides) -> LatentGRPOConfig:
    values = dict(
        output_dir=str(tmp_path / "out"), use_cpu=True, bf16=False, num_generations=2, per_device_train_batch_size=4,
        max_completion_length=8, report_to=[], save_strategy="no", gradient_checkpointing=False, max_pixels=56 * 56,
        seed=0,
    )
    values.update(overrides)
    return LatentGRPOConfig(**values)


def length_reward(completions, **kwargs):
    return [float(len(c[0]["content"])) for c in completions]


def trainer_for(model, processor, tmp_path, dataset, **overrides) -> LatentGRPOTrainer:
    processor.tokenizer.padding_side = "left"
    trainer = LatentGRPOTrainer(
        model, reward_funcs=length_reward, args=config(tmp_path, **overrides), train_dataset=dataset,
        processing_class=processor,
    )
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by train(); these tests call the loss directly
    return trainer


def rollout_rows(dataset) -> list[dict]:
    """Two prompts (image, video) × 2 generations, as RepeatSampler hands them out."""
    return [dataset[0], dataset[0], dataset[1], dataset[1]]


def rollout_logps(rollout, completion_ids: torch.Tensor) -> torch.Tensor:
    logits = rollout.logits[:, : completion_ids.shape[1]]
    return torch.log_softmax(logits, dim=-1).gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)


@pytest.fixture(scope="module")
def latent_batch(tiny_session, tmp_path_factory):
    """A trainer with old log-probs (num_iterations=2) and one rollout batch where rows 0 and 2 imagine."""
    model, processor = (copy.deepcopy(x) for x in tiny_session)
    tmp_path = tmp_path_factory.mktemp("latent_batch")
    dataset = load_records(write_rl_jsonl(tmp_path / "data"), task="rl")
    trainer = trainer_for(model, processor, tmp_path, dataset, num_iterations=2)
    with pytest.MonkeyPatch.context() as patch:
        rollouts = force_latent_blocks(patch)
        out = trainer._generate_and_score_completions(rollout_rows(dataset))
    return trainer, out, rollouts[-1]


def test_mask_is_zero_exactly_at_forced_latent_tokens(latent_batch):
    trainer, out, _ = latent_batch
    spec, ids = trainer.latent_spec, out["completion_ids"]
    k = spec.latent_size
    for row in (0, 2):  # forced to open a block at step 1: start, K pads, end
        assert ids[row, 1].item() == spec.start_id
        assert ids[row, 2 : 2 + k].tolist() == [spec.pad_id] * k and ids[row, 2 + k].item() == spec.end_id
    forced = (ids == spec.pad_id) | (ids == spec.end_id)
    assert forced.any()
    assert torch.equal(out["tool_mask"].bool(), ~forced)
    assert out["tool_mask"][ids == spec.start_id].eq(1).all()
    assert out["num_items_in_batch"].item() == (out["completion_mask"] * out["tool_mask"]).sum().item()
    assert out["num_items_in_batch"].item() < out["completion_mask"].sum().item()
    # the fed-back vectors travel with their rows: K per imagining row, none for the others
    assert out["latent_embeds"].shape[:2] == (4, k)
    assert out["latent_embeds"][[0, 2]].abs().sum(-1).gt(0).all()
    assert out["latent_embeds"][[1, 3]].eq(0).all()
    # each row keeps its own visual: image rows, then frame-list video rows with their temporal grid
    assert "image_grid_thw" in out["visual_inputs"][0] and "video_grid_thw" in out["visual_inputs"][2]
    assert out["visual_inputs"][2]["second_per_grid_ts"].item() == pytest.approx(2.0)  # temporal patch 2 at 1 fps


def test_recomputed_logps_reproduce_the_rollout(latent_batch):
    trainer, out, rollout = latent_batch
    ids = out["completion_ids"]
    scored = (out["completion_mask"] * out["tool_mask"]).bool()
    sampled = rollout_logps(rollout, ids)
    assert torch.allclose(out["old_per_token_logps"][scored], sampled[scored], atol=1e-4)

    # what the release did: recompute with the learned pad embedding at latent positions; the text after the block
    # no longer matches what was sampled, so the check above can fail
    input_ids = torch.cat([out["prompt_ids"], ids], dim=1)
    attention_mask = torch.cat([out["prompt_mask"], out["completion_mask"]], dim=1)
    with torch.no_grad(), trainer._using_rows(_RowBatch(inputs=out["visual_inputs"], latents=[])):
        plain, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, input_ids, attention_mask, ids.shape[1])
    after_block = scored.clone()
    after_block[:, : 3 + trainer.latent_spec.latent_size] = False
    after_block[[1, 3]] = False
    assert after_block.any()
    assert (plain[after_block] - sampled[after_block]).abs().max() > 1e-3


def test_latent_positions_get_no_policy_gradient_for_any_loss_type(latent_batch):
    trainer, out, _ = latent_batch
    out = {**out, "advantages": torch.tensor([1.0, -1.0, 0.5, -0.5])}
    forced = ~out["tool_mask"].bool() & out["completion_mask"].bool()
    text = out["tool_mask"].bool() & out["completion_mask"].bool()
    original = trainer._get_per_token_logps_and_entropies
    computed = {}

    def policy_logps(*args, **kwargs):
        """The real forward once (its gradient reaches the weights); then the same values as a fresh leaf per loss."""
        if "logps" not in computed:
            logps, entropies, aux = original(*args, **kwargs)
            logps.retain_grad()
        else:
            logps, entropies, aux = computed["logps"].detach().requires_grad_(), computed["entropies"], None
        computed.update(logps=logps, entropies=entropies.detach())
        return logps, entropies, aux

    trainer._get_per_token_logps_and_entropies = policy_logps
    try:
        for loss_type in LOSS_TYPES:
            trainer.loss_type = loss_type
            trainer.model.zero_grad()
            loss = trainer.compute_loss(trainer.model, out)
            assert torch.isfinite(loss), loss_type
            loss.backward()
            grad = computed["logps"].grad
            assert grad[forced].eq(0).all(), loss_type
            assert grad[text].ne(0).any(), loss_type
            if loss_type == LOSS_TYPES[0]:
                grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
                assert grads and all(torch.isfinite(g).all() for g in grads)
    finally:
        del trainer._get_per_token_logps_and_entropies


@pytest.mark.slow
def test_matches_stock_grpo_when_no_latents(stock_tiny, tmp_path):
    model, processor = stock_tiny
    record = load_records(write_rl_jsonl(tmp_path / "data", video=False), task="rl")[0]
    assert record["prompt"] == build_prompt(QUESTION)
    ours = trainer_for(copy.deepcopy(model), copy.deepcopy(processor), tmp_path, Dataset.from_list([record]))
    stock_processor = copy.deepcopy(processor)
    stock_processor.tokenizer.padding_side = "left"
    stock_row = {"prompt": [{"role": "user", "content": record["prompt"]}], "image": random_image(0), "answer": "B"}
    stock_args = GRPOConfig(
        output_dir=str(tmp_path / "stock"), use_cpu=True, bf16=False, num_generations=2, per_device_train_batch_size=4,
        max_completion_length=8, report_to=[], save_strategy="no", gradient_checkpointing=False, seed=0,
    )
    stock = GRPOTrainer(
        copy.deepcopy(model), reward_funcs=length_reward, args=stock_args, train_dataset=Dataset.from_list([stock_row]),
        processing_class=stock_processor,
    )
    stock.model.train()
    stock.current_gradient_accumulation_steps = 1

    torch.manual_seed(7)
    expected = stock._generate_and_score_completions([dict(stock_row) for _ in range(4)])
    torch.manual_seed(7)
    got = ours._generate_and_score_completions([dict(record) for _ in range(4)])
    assert torch.equal(got["prompt_ids"], expected["prompt_ids"])
    assert torch.equal(got["completion_ids"], expected["completion_ids"])
    assert torch.allclose(got["advantages"], expected["advantages"])
    assert got["advantages"].abs().sum() > 0
    assert got["num_items_in_batch"].item() == expected["num_items_in_batch"].item()

    for loss_type in ("dapo", "grpo", "dr_grpo"):
        ours.loss_type = stock.loss_type = loss_type
        ours.model.zero_grad()
        stock.model.zero_grad()
        loss_ours = ours.compute_loss(ours.model, got)
        loss_stock = stock.compute_loss(stock.model, expected)
        torch.testing.assert_close(loss_ours, loss_stock, rtol=1e-5, atol=1e-7)
        loss_ours.backward()
        loss_stock.backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in stock.model.parameters())  # on-policy loss
        for (name, p_ours), p_stock in zip(ours.model.named_parameters(), stock.model.parameters(), strict=True):
            if p_stock.grad is None:
                assert p_ours.grad is None or p_ours.grad.eq(0).all(), name
                continue
            torch.testing.assert_close(p_ours.grad, p_stock.grad, rtol=1e-4, atol=1e-7, msg=name)


def test_peft_reference_is_the_disabled_adapter_with_latents(tiny, tmp_path, monkeypatch):
    from peft import LoraConfig

    model, processor = tiny
    dataset = load_records(write_rl_jsonl(tmp_path / "data"), task="rl")
    processor.tokenizer.padding_side = "left"
    trainer = LatentGRPOTrainer(
        model, reward_funcs=length_reward, args=config(tmp_path, beta=0.1, num_iterations=2), train_dataset=dataset,
        processing_class=processor, peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    rollouts = force_latent_blocks(monkeypatch)
    out = trainer._generate_and_score_completions(rollout_rows(dataset))
    scored = (out["completion_mask"] * out["tool_mask"]).bool()
    # a fresh LoRA adapter is zero: reference (adapter off) and policy agree wherever latents were re-inserted in both
    assert torch.allclose(out["ref_per_token_logps"][scored], out["old_per_token_logps"][scored], atol=1e-5)
    assert torch.allclose(out["old_per_token_logps"][scored], rollout_logps(rollouts[-1], out["completion_ids"])[scored], atol=1e-4)
    out["advantages"] = torch.tensor([1.0, -1.0, 0.5, -0.5])
    loss = trainer.compute_loss(trainer.model, out)
    loss.backward()
    lora_grads = [p.grad for n, p in trainer.model.named_parameters() if "lora_B" in n]
    assert lora_grads and any(g is not None and g.abs().sum() > 0 for g in lora_grads)


def test_config_rejects_what_latent_rollouts_cannot_do(tmp_path):
    with pytest.raises(ValueError, match="vLLM cannot"):
        config(tmp_path, use_vllm=True)
    with pytest.raises(ValueError, match="min_p"):
        config(tmp_path, min_p=0.1)
    with pytest.raises(ValueError, match="max_frames"):
        config(tmp_path, max_frames=0)


def test_trainer_requires_latent_config(tiny, tmp_path):
    model, processor = tiny
    with pytest.raises(TypeError, match="LatentGRPOConfig"):
        LatentGRPOTrainer(model, reward_funcs=length_reward, args=GRPOConfig(output_dir=str(tmp_path), use_cpu=True))


def test_a_video_that_fails_mid_rollout_is_masked_and_counted_or_named(tiny, tmp_path):
    import json

    from tiny_inputs import corrupt_middle, write_video

    from trl_latent.data import DataRecordError

    folder = tmp_path / "data"
    corrupt_middle(write_video(folder / "clip.mp4"))
    random_image(0).save(folder / "image.png")
    rows = [{"video": "clip.mp4", "text_input": QUESTION, "answer": "A"},
            {"image_input": "image.png", "text_input": QUESTION, "answer": "B"}]
    (folder / "rl.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    dataset = load_records(folder / "rl.jsonl", task="rl")  # the mp4 header is fine: it loads

    strict = trainer_for(*copy.deepcopy(tiny), tmp_path / "strict", dataset)
    with pytest.raises(DataRecordError, match=r"rl\.jsonl:1: field 'video': unreadable video .*skip_invalid_samples"):
        strict._generate_and_score_completions(rollout_rows(dataset))

    trainer = trainer_for(*tiny, tmp_path / "skip", dataset, skip_invalid_samples=True, max_steps=1, logging_steps=1)
    out = trainer._generate_and_score_completions(rollout_rows(dataset))
    assert out["tool_mask"][:2].eq(0).all() and out["tool_mask"][2:].any()  # both copies of the video prompt
    assert out["num_items_in_batch"].item() == (out["completion_mask"] * out["tool_mask"]).sum().item()
    assert trainer.skipped_samples == 1  # one prompt, not its two rollouts
    trainer.train()  # a whole step with the corrupt prompt in it
    assert trainer.skipped_samples == 2 and trainer.state.log_history[-1]["skipped_samples"] == 2


def test_model_card_has_the_reward_weights_and_no_local_path(tiny, tmp_path, rl_jsonl):
    from trl_latent import rewards

    model, processor = tiny
    trainer = LatentGRPOTrainer(model, reward_funcs=[rewards.accuracy, rewards.format], processing_class=processor,
                                args=config(tmp_path, reward_weights=[1.0, 0.2]),
                                train_dataset=load_records(rl_jsonl, task="rl"))
    trainer.create_model_card(model_name="run", dataset_name=str(rl_jsonl))
    assert not (tmp_path / "out" / "README.md").exists()  # no weights saved there yet: no card describing them
    card = str(trainer.build_model_card("run", dataset_name=str(rl_jsonl)))
    assert "| Rewards | 1 × `accuracy` + 0.2 × `format` |" in card and "| Training data | `rl.jsonl` |" in card
    assert str(tmp_path) not in card and "[None]" not in card and "generate_with_latents(model, **inputs" in card
    # 4DThinker is cited as the method, GRPO (from the DeepSeekMath paper) as the algorithm, never as "LatentGRPO"
    citations = card.split("## Citations", 1)[1]
    assert "@article{chen20264dthinker" in citations and "4DThinker: Thinking with 4D Imagery" in citations
    assert "GRPO, the algorithm" in citations and "shao2024deepseekmath" in citations
    assert "Cite LatentGRPO" not in card and "licence" not in card



@pytest.mark.parametrize("centred", [False, True])
def test_calibrated_rollouts_recompute_exactly(tiny, tmp_path, centred):
    """A checkpoint with a recorded fed-back norm (DIFT ``latent_feedback_norm: target``, or ``centred`` with each
    slot's center): the rollout feeds rescaled states, carries them with the rows, and the recomputed log-probs
    reproduce the sampled ones."""
    from trl_latent.tokens import get_latent_spec, set_feedback_norm

    model, processor = tiny
    size, hidden = get_latent_spec(model).latent_size, model.get_input_embeddings().weight.shape[1]
    center = torch.randn(size, hidden, generator=torch.Generator().manual_seed(0)) if centred else None
    set_feedback_norm(model, 0.5, center)
    dataset = load_records(write_rl_jsonl(tmp_path / "data"), task="rl")
    trainer = trainer_for(model, processor, tmp_path, dataset, num_iterations=2)
    assert trainer.latent_spec.feedback_norm == pytest.approx(0.5)
    with pytest.MonkeyPatch.context() as patch:
        rollouts = force_latent_blocks(patch)
        out = trainer._generate_and_score_completions(rollout_rows(dataset))
    vectors = out["latent_embeds"][[0, 2]]  # [2 rows, their latent positions, H]
    if centred:  # the i-th latent of a row sits in slot i mod K
        vectors = vectors - center[torch.arange(vectors.shape[1]) % size]
    vectors = vectors.flatten(0, 1)
    torch.testing.assert_close(vectors.norm(dim=-1), torch.full((vectors.shape[0],), 0.5), atol=1e-5, rtol=0)
    ids = out["completion_ids"]
    scored = (out["completion_mask"] * out["tool_mask"]).bool()
    sampled = rollout_logps(rollouts[-1], ids)
    assert torch.allclose(out["old_per_token_logps"][scored], sampled[scored], atol=1e-4)



def test_static_cache_option_gives_the_dynamic_rollouts(tiny_session, tmp_path):
    """GRPOConfig's cache_implementation='static' (what stock generate reads) reaches the latent rollouts and changes
    nothing in them: same sampled tokens, latent vectors and logits."""
    from trl_latent.generation import _DECODERS

    dataset = load_records(write_rl_jsonl(tmp_path / "data"), task="rl")
    outputs = {}
    for cache in (None, "static"):
        model, processor = (copy.deepcopy(x) for x in tiny_session)
        trainer = trainer_for(model, processor, tmp_path / str(cache), dataset, cache_implementation=cache)
        with pytest.MonkeyPatch.context() as patch:
            rollouts = force_latent_blocks(patch)
            torch.manual_seed(7)
            trainer._generate_and_score_completions(rollout_rows(dataset))
        outputs[cache] = rollouts[-1]
        assert (trainer.model in _DECODERS) == (cache == "static")
    dynamic, static = outputs[None], outputs["static"]
    assert dynamic.latent_mask.any() and torch.equal(static.completion_ids, dynamic.completion_ids)
    torch.testing.assert_close(static.logits, dynamic.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(static.latent_embeds, dynamic.latent_embeds, atol=1e-5, rtol=1e-5)
