"""``trl_latent.scripts.dift.main`` on the shipped tiny recipe, and a trained tiny model emitting a latent block."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from dift_data import dift_record, write_jsonl, write_video

from trl_latent.data import VisualOptions, load_records, load_visual
from trl_latent.scripts.dift import main
from trl_latent.testing import save_tiny_checkpoint

RECIPE = Path(__file__).resolve().parents[2] / "examples" / "dift_tiny.yaml"


@pytest.fixture
def stock_checkpoint(tmp_path):
    path, spec = save_tiny_checkpoint(tmp_path / "tiny", latent_size=None)
    assert spec is None  # the script has to add the latent tokens itself
    return path


def test_tiny_recipe_runs_two_steps(stock_checkpoint, tmp_path, monkeypatch):
    data = write_jsonl(tmp_path / "data" / "train.jsonl", [dift_record(tmp_path / "data", i) for i in range(2)])
    # the local checkpoint came from a Hub model: its card says so, and the new card must follow it there
    (stock_checkpoint / "README.md").write_text("---\nbase_model: Qwen/Qwen2.5-VL-3B-Instruct\n---\n# tiny\n")
    out = tmp_path / "out"
    code = main(["--config", str(RECIPE), "--model_name_or_path", str(stock_checkpoint),
                 "--dataset_name", str(data), "--output_dir", str(out)])
    assert code == 0
    card = (out / "README.md").read_text()
    assert (out / "model.safetensors").is_file() and "| Latent size K | 4 |" in card
    from transformers import AutoConfig, AutoProcessor

    assert AutoConfig.from_pretrained(out).latent_size == 4
    assert "<|latent_start|>" in AutoProcessor.from_pretrained(out).tokenizer.get_vocab()

    assert "base_model: Qwen/Qwen2.5-VL-3B-Instruct" in card and "[None]" not in card
    assert "fine-tuned version of [Qwen/Qwen2.5-VL-3B-Instruct](https://huggingface.co/Qwen/Qwen2.5-VL-3B-Instruct) " \
           "(through the local checkpoint `tiny`)" in card
    assert str(tmp_path) not in card and "| Training data | `train.jsonl` |" in card
    assert 'pipeline("text-generation"' not in card
    # the quick start runs as written, from the folder holding the model, on a video named clip.mp4
    code_block = card.split("## Quick start\n\n```python\n", 1)[1].split("```", 1)[0]
    assert "generate_with_latents(model, **inputs" in code_block and 'model_id = "out"' in code_block
    write_video(tmp_path / "clip.mp4")
    monkeypatch.chdir(tmp_path)
    exec(code_block.replace("max_new_tokens=512", "max_new_tokens=4"), {})  # raises if any line of it is wrong


def test_two_stage_recipe_calibrated_stage_1_then_self_fed_stage_2(stock_checkpoint, tmp_path):
    """The documented two-stage recipe through the command line: stage 1 records the targets' norm, stage 2
    (examples/dift_stage2_tiny.yaml, self-fed) keeps it and trains."""
    import json

    from transformers import AutoConfig

    data = write_jsonl(tmp_path / "data" / "train.jsonl", [dift_record(tmp_path / "data", i) for i in range(2)])
    stage1, stage2 = tmp_path / "stage1", tmp_path / "stage2"
    assert main(["--config", str(RECIPE), "--model_name_or_path", str(stock_checkpoint), "--dataset_name", str(data),
                 "--output_dir", str(stage1), "--latent_feedback_norm", "target"]) == 0
    norm = AutoConfig.from_pretrained(stage1).latent_feedback_norm
    assert norm > 0
    assert main(["--config", str(RECIPE.with_name("dift_stage2_tiny.yaml")), "--model_name_or_path", str(stage1),
                 "--dataset_name", str(data), "--output_dir", str(stage2)]) == 0
    assert AutoConfig.from_pretrained(stage2).latent_feedback_norm == norm
    history = json.loads((stage2 / "trainer_state.json").read_text())["log_history"]
    assert any("cos_sim" in entry for entry in history)


def test_recipe_flags_are_validated():
    with pytest.raises(SystemExit, match="unknown flag --no_such_flag"):
        main(["--config", str(RECIPE), "--no_such_flag", "1"])


@pytest.mark.slow
def test_trained_model_reloads_and_thinks_in_a_latent_block(stock_checkpoint, tmp_path):
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from trl_latent.generation import generate_with_latents
    from trl_latent.tokens import get_latent_spec

    root = tmp_path / "data"
    rows = [dift_record(root, i, num_imagery=1) | {"text_output": "<output_image><answer>B</answer>"} for i in range(2)]
    out = tmp_path / "out"
    # 5e-3 for 28 steps: the start token leads from step 22 on, by a logit margin growing to ~2 at step 28 (2e-2 made
    # the margin flip sign between steps and needed 40 steps to settle)
    code = main(["--config", str(RECIPE), "--model_name_or_path", str(stock_checkpoint),
                 "--dataset_name", str(write_jsonl(root / "train.jsonl", rows)), "--output_dir", str(out),
                 "--max_steps", "28", "--learning_rate", "5e-3", "--lr_scheduler_type", "constant",
                 "--ce_weight", "1.0"])
    assert code == 0

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(out).eval()
    processor = AutoProcessor.from_pretrained(out)
    spec = get_latent_spec(model)
    assert spec.latent_size == 4
    record = load_records(root / "train.jsonl")[0]  # the prompt as in training: video frames + 4D suffix
    visual = load_visual(record, VisualOptions(max_pixels=56 * 56))
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": record["prompt"]}]}]
    prompt = processor(text=[processor.apply_chat_template(messages, add_generation_prompt=True)],
                       videos=[visual.frames], videos_kwargs={"video_metadata": [visual.video_metadata]},
                       return_tensors="pt")
    with torch.no_grad():
        result = generate_with_latents(model, max_new_tokens=8, spec=spec, **prompt)
    completion = result.completion_ids[0].tolist()
    assert completion[: spec.latent_size + 2] == [spec.start_id] + [spec.pad_id] * spec.latent_size + [spec.end_id]
    assert result.latent_mask[0, 1 : spec.latent_size + 1].all()
