"""Compatibility with the 4DThinker release: its prompts, its 4DRL JSONL, its loss mask, its config keys, and a
checkpoint laid out as its ``dift/src/main.py`` saves one (4.x config and weight names, tokens in its order) that
trains one DIFT step and one 4DRL step from the release's data formats."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from tiny_inputs import random_frames, random_image
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration
from trl import ModelConfig, TrlParser

from grpo.helpers import force_latent_blocks
from trl_latent import rewards
from trl_latent.answers import RELEASE_PROMPT_SUFFIX, RELEASE_RL_PROMPT_SUFFIX
from trl_latent.data import DataRecordError, load_records
from trl_latent.dift import LatentImageryConfig, LatentImageryTrainer
from trl_latent.grpo import LatentGRPOConfig, LatentGRPOTrainer
from trl_latent.grpo.latent_grpo_trainer import latent_loss_mask
from trl_latent.scripts.dift import LatentImageryScriptArguments
from trl_latent.scripts.grpo import LatentGRPOScriptArguments
from trl_latent.testing import TINY_TEXT, TINY_VISION, build_config, build_processor
from trl_latent.tokens import LATENT_END, LATENT_PAD, LATENT_START, LatentSpec, get_latent_spec, get_loss_weights

RELEASE_TOKENS = (LATENT_PAD, LATENT_START, LATENT_END)  # the order of dift/src/main.py's add_tokens calls


def _frames(folder: Path, prefix: str, count: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, frame in enumerate(random_frames(len(prefix) + count, num_frames=count)):
        names.append(f"{prefix}_{i}.png")
        Image.fromarray(frame).save(folder / names[-1])
    return names


def write_release_rl(folder: Path) -> Path:
    """Rows of the release's ``rl_data.jsonl``: one with ``frame_paths``, one with ``video_path`` (an mp4)."""
    import av
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    with av.open(str(folder / "clip.mp4"), "w") as container:
        stream = container.add_stream("mpeg4", rate=1)
        stream.width = stream.height = 56
        stream.pix_fmt = "yuv420p"
        for frame in random_frames(7, num_frames=4):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())
    rows = [
        {"frame_paths": _frames(folder, "f", 4), "Question": "Which way does the cup move?", "A": "left",
         "B": "right", "C": "up", "D": "down", "Correct": "B"},
        {"video_path": "clip.mp4", "Question": "Does the camera pan?", "A": "Pan Left", "B": "Pan Right", "C": "",
         "D": "", "Correct": " a "},
    ]
    path = folder / "rl_data.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_release_dift(folder: Path) -> Path:
    """Rows of the release's DIFT JSONL: frame list, question, imagery images, CoT with ``<output_image>``."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(2):
        imagery = []
        for k in range(2):
            imagery.append(f"im{index}_{k}.png")
            random_image(10 * index + k).save(folder / imagery[-1])
        rows.append({"image_input": _frames(folder, f"d{index}", 4), "text_input": f"Where does object {index} go?",
                     "image_output": imagery,
                     "text_output": "<think>First <output_image><output_image> then it moves.</think><answer>B</answer>"})
    path = folder / "dift.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


# ----- prompts and data --------------------------------------------------------------------------------------------


def test_release_rl_jsonl_is_accepted_as_is(tmp_path):
    records = load_records(write_release_rl(tmp_path), task="rl", prompt_suffix="release_rl")
    first, second = records[0], records[1]
    # built as the release's build_question_text does: question, blank line, "X. option" lines, suffix appended
    assert first["prompt"] == (
        "Which way does the cup move?\n\nA. left\nB. right\nC. up\nD. down" + RELEASE_RL_PROMPT_SUFFIX
    )
    assert second["prompt"] == "Does the camera pan?\n\nA. Pan Left\nB. Pan Right" + RELEASE_RL_PROMPT_SUFFIX
    assert (first["answer"], second["answer"]) == ("B", "A")
    assert len(first["frames"]) == 4 and first["video"] == ""
    assert second["video"].endswith("clip.mp4") and second["frames"] == []


@pytest.mark.parametrize(
    ("change", "field"),
    [({"Correct": ""}, "Correct"), ({"frame_paths": None, "video_path": None}, "video_path/frame_paths"),
     ({"Question": " "}, "Question"), ({"frame_paths": ["nope.png"]}, "frame_paths[0]")],
)
def test_release_rl_errors_name_the_field(tmp_path, change, field):
    path = write_release_rl(tmp_path)
    row = {**json.loads(path.read_text().splitlines()[0]), **change}
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(DataRecordError, match=re.escape(f"rl_data.jsonl:1: field '{field}'")):
        load_records(path, task="rl")


def test_release_dift_prompt_is_byte_for_byte(tmp_path):
    records = load_records(write_release_dift(tmp_path), prompt_suffix="release")
    assert records[0]["prompt"] == "Where does object 0 go?" + RELEASE_PROMPT_SUFFIX  # task.py: text_input + suffix
    with pytest.raises(ValueError, match="prompt_suffix must be one of"):
        load_records(tmp_path / "dift.jsonl", prompt_suffix="releas")


def test_release_options_are_selectable_in_yaml(tmp_path):
    grpo_yaml = tmp_path / "grpo.yaml"
    grpo_yaml.write_text("output_dir: out\nprompt_suffix: release_rl\nmask_latent_start: true\n"
                         "mrope_position_rule: upstream\nuse_cpu: true\nbf16: false\n")
    _, grpo, _ = TrlParser((LatentGRPOScriptArguments, LatentGRPOConfig, ModelConfig)).parse_args_and_config(
        ["--config", str(grpo_yaml)])
    assert (grpo.prompt_suffix, grpo.mask_latent_start, grpo.mrope_position_rule) == ("release_rl", True, "upstream")
    dift_yaml = tmp_path / "dift.yaml"
    dift_yaml.write_text("output_dir: out\nprompt_suffix: release\nmrope_position_rule: reference\nuse_cpu: true\n"
                         "bf16: false\n")
    _, dift, _ = TrlParser((LatentImageryScriptArguments, LatentImageryConfig, ModelConfig)).parse_args_and_config(
        ["--config", str(dift_yaml)])
    assert (dift.prompt_suffix, dift.mrope_position_rule, dift.ce_weight) == ("release", "reference", None)
    with pytest.raises(ValueError, match="mrope_position_rule must be one of"):
        LatentGRPOConfig(output_dir=str(tmp_path), mrope_position_rule="qwen", use_cpu=True, bf16=False)


def test_mask_latent_start_as_the_release():
    spec = LatentSpec(latent_size=2, start_id=7, pad_id=8, end_id=9)
    ids = torch.tensor([[1, 7, 8, 8, 9, 2]])
    assert latent_loss_mask(ids, spec).tolist() == [[1, 1, 0, 0, 0, 1]]  # ours: the sampled start is scored
    assert latent_loss_mask(ids, spec, mask_start=True).tolist() == [[1, 0, 0, 0, 0, 1]]  # the release's mask


# ----- a checkpoint laid out like the release's ---------------------------------------------------------------------


def _release_config(config, vocab_size: int, ids: dict[str, int]) -> dict:
    """A transformers-4.49-style config.json: text keys flat at the top, ``rope_scaling`` of type mrope, the vision
    keys of the Qwen2.5-VL release, and the latent keys ``dift/src/main.py`` sets."""
    text, vision = TINY_TEXT, TINY_VISION
    return {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl",
        "transformers_version": "4.49.0", "torch_dtype": "float32", "attention_dropout": 0.0,
        "bos_token_id": 151643, "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": text["hidden_size"],
        "initializer_range": 0.02, "intermediate_size": text["intermediate_size"], "max_position_embeddings": 32768,
        "max_window_layers": 70, "num_attention_heads": text["num_attention_heads"],
        "num_hidden_layers": text["num_hidden_layers"], "num_key_value_heads": text["num_key_value_heads"],
        "rms_norm_eps": 1e-06, "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]}, "rope_theta": 1e6,
        "sliding_window": 32768, "tie_word_embeddings": True, "use_cache": True, "use_sliding_window": False,
        "vocab_size": vocab_size, "image_token_id": config.image_token_id, "video_token_id": config.video_token_id,
        "vision_start_token_id": config.vision_start_token_id, "vision_end_token_id": config.vision_end_token_id,
        "vision_token_id": 151654,
        "vision_config": {
            "depth": vision["depth"], "hidden_act": "silu", "hidden_size": vision["hidden_size"],
            "intermediate_size": vision["intermediate_size"], "num_heads": vision["num_heads"], "in_chans": 3,
            "out_hidden_size": text["hidden_size"], "patch_size": 14, "spatial_merge_size": 2,
            "spatial_patch_size": 14, "window_size": vision["window_size"],
            "fullatt_block_indexes": vision["fullatt_block_indexes"], "tokens_per_second": 2,
            "temporal_patch_size": 2,
        },
        "compress_strategy": "average", "latent_size": 4, "stage": "stage1", "ce_loss_weight": 0.2,
        "sim_loss_weight": 0.5, "latent_token_id": ids[LATENT_PAD], "latent_start_id": ids[LATENT_START],
        "latent_end_id": ids[LATENT_END],
    }


def _release_weight_name(name: str) -> str:
    """transformers 5.x names → the 4.x layout the release saves (``visual.*``, ``model.layers.*``, ``lm_head``)."""
    if name.startswith("model.visual."):
        return name[len("model."):]
    return name.replace("model.language_model.", "model.", 1)


@pytest.fixture(scope="module")
def release_checkpoint(tmp_path_factory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("release_ckpt")
    processor = build_processor()
    for token in RELEASE_TOKENS:  # one by one, as dift/src/main.py does, so the pad token gets the first new id
        processor.tokenizer.add_tokens(token, special_tokens=True)
    ids = {token: processor.tokenizer.convert_tokens_to_ids(token) for token in RELEASE_TOKENS}
    assert ids[LATENT_PAD] < ids[LATENT_START] < ids[LATENT_END]
    vocab_size = len(processor.tokenizer)  # the release resizes the embeddings to exactly len(tokenizer)
    config = build_config(processor.tokenizer)
    torch.manual_seed(1)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.resize_token_embeddings(vocab_size)
    weights = {_release_weight_name(k): v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    assert "model.embed_tokens.weight" in weights and "visual.patch_embed.proj.weight" in weights
    save_file(weights, str(path / "model.safetensors"), metadata={"format": "pt"})
    (path / "config.json").write_text(json.dumps(_release_config(config, vocab_size, ids), indent=2))
    processor.save_pretrained(path)
    return path, {"ids": ids, "weights": weights}


def test_release_checkpoint_loads_as_it_is(release_checkpoint):
    path, expected = release_checkpoint
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(path)
    ids = expected["ids"]
    assert get_latent_spec(model) == LatentSpec(4, ids[LATENT_START], ids[LATENT_PAD], ids[LATENT_END])
    assert get_loss_weights(model) == (0.2, 0.5)
    assert model.config.vision_config.tokens_per_second == 2
    loaded = model.state_dict()
    for name in ("model.language_model.layers.1.mlp.down_proj.weight", "model.visual.blocks.0.attn.qkv.weight",
                 "model.language_model.embed_tokens.weight"):
        assert torch.equal(loaded[name], expected["weights"][_release_weight_name(name)])  # loaded, not re-initialised
    assert torch.equal(loaded["lm_head.weight"], loaded["model.language_model.embed_tokens.weight"])


@pytest.fixture(scope="module")
def release_training(release_checkpoint, tmp_path_factory) -> dict:
    """One DIFT step, then one 4DRL step, each from the release checkpoint and the release's data formats.

    Run as a fixture: TRL 1.16's rollout reads ``is_gradient_checkpointing``, which transformers 5.24 announces for
    removal, and the suite's deprecation plugin (``tests/deprecations.py``) checks test bodies only.
    """
    path, _ = release_checkpoint
    tmp_path = tmp_path_factory.mktemp("release_training")
    common = dict(use_cpu=True, bf16=False, report_to=[], save_strategy="no", max_steps=1, logging_steps=1,
                  activation_checkpointing=False, dataloader_num_workers=0, disable_tqdm=True, max_pixels=56 * 56)

    dift_args = LatentImageryConfig(output_dir=str(tmp_path / "dift"), per_device_train_batch_size=2,
                                    imagery_max_pixels=56 * 56, prompt_suffix="release", **common)
    dift = LatentImageryTrainer(str(path), args=dift_args,
                                train_dataset=load_records(write_release_dift(tmp_path / "d"), prompt_suffix="release"))
    weights = (dift_args.ce_weight, dift_args.sim_weight)
    dift_state = dift.train()
    dift.save_model(tmp_path / "dift")

    grpo_args = LatentGRPOConfig(output_dir=str(tmp_path / "grpo"), num_generations=2, per_device_train_batch_size=2,
                                 max_completion_length=10, prompt_suffix="release_rl", mask_latent_start=True,
                                 beta=0.01, **common)
    processor = AutoProcessor.from_pretrained(path)
    processor.tokenizer.padding_side = "left"
    dataset = load_records(write_release_rl(tmp_path / "rl"), task="rl", prompt_suffix="release_rl")
    grpo = LatentGRPOTrainer(str(path), reward_funcs=[rewards.accuracy, rewards.format], args=grpo_args,
                             train_dataset=dataset, processing_class=processor)
    outputs = []
    real = grpo._generate_and_score_completions
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(grpo, "_generate_and_score_completions", lambda rows: outputs.append(real(rows)) or outputs[-1])
        force_latent_blocks(patch)  # every even row opens a latent block at step 1
        grpo_state = grpo.train()
    return {"weights": weights, "dift": dift, "dift_state": dift_state, "saved": tmp_path / "dift" / "config.json",
            "grpo": grpo, "grpo_state": grpo_state, "rollout": outputs[0]}


def test_release_checkpoint_trains_one_dift_step(release_training, release_checkpoint):
    ids = release_checkpoint[1]["ids"]
    assert release_training["weights"] == (0.2, 0.5)  # read from the checkpoint's release keys
    assert release_training["dift_state"].global_step == 1
    assert any("sim_loss" in entry for entry in release_training["dift"].state.log_history)
    saved = json.loads(release_training["saved"].read_text())
    assert (saved["ce_loss_weight"], saved["sim_loss_weight"], saved["stage"]) == (0.2, 0.5, "stage1")
    assert (saved["latent_token_id"], saved["latent_start_id"], saved["latent_end_id"]) == (
        ids[LATENT_PAD], ids[LATENT_START], ids[LATENT_END])
    assert saved["mrope_position_rule"] == "reference"


def test_release_checkpoint_trains_one_grpo_step(release_training, release_checkpoint):
    ids = release_checkpoint[1]["ids"]
    assert release_training["grpo_state"].global_step == 1
    assert any("loss" in entry for entry in release_training["grpo"].state.log_history)
    rollout = release_training["rollout"]
    start = rollout["completion_ids"] == ids[LATENT_START]
    assert start.any() and rollout["tool_mask"][start].eq(0).all()  # the release's mask: latent start not scored
