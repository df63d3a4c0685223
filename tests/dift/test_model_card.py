"""Model-card helpers (the trainer-level card is checked in test_trainer.py)."""

from __future__ import annotations

import datasets

from trl_latent.data import VisualOptions
from trl_latent.model_card import (
    SECTION_TITLE,
    base_model_of,
    data_sources,
    eval_results,
    hub_dataset_ids,
    latent_spec_details,
    parent_card,
    render_section,
    training_data_details,
)

TRL_CARD = "# Model Card for x\n\nbody\n\n## Citations\n\nCite TRL as: ...\n"


def test_section_is_a_table_and_the_decoding_note():
    section = render_section({"Latent size K": "4"})
    assert section.startswith(SECTION_TITLE) and "| Latent size K | 4 |" in section and "generate_with_latents" in section


def test_only_hub_ids_are_card_datasets(tmp_path):
    local = tmp_path / "dift.jsonl"
    local.write_text("")
    assert hub_dataset_ids("jankin123/4DThinker-Training-Data", str(local), None, "../x/y/z") == [
        "jankin123/4DThinker-Training-Data"]


def test_eval_results_come_from_the_last_evaluation_without_timings():
    history = [{"loss": 2.0, "step": 1}, {"eval_loss": 1.9, "eval_runtime": 3.0, "step": 1},
               {"eval_loss": 1.5, "eval_sim_loss": 0.4, "eval_samples_per_second": 9.0, "epoch": 1.0, "step": 2}]
    results = eval_results(history, "valid.jsonl")
    assert {(r.metric_name, r.metric_value) for r in results} == {("eval_loss", 1.5), ("eval_sim_loss", 0.4)}
    assert {r.dataset_name for r in results} == {"valid.jsonl"} and eval_results(history[:1], "v") == []


def test_license_and_base_model_are_inherited_from_the_parent_card(tmp_path):
    (tmp_path / "README.md").write_text("---\nbase_model: Qwen/Qwen2.5-VL-7B-Instruct\nlicense: apache-2.0\n"
                                        "tags: [x]\n---\n# card\n")
    assert parent_card(str(tmp_path)) == {"base_model": "Qwen/Qwen2.5-VL-7B-Instruct", "license": "apache-2.0"}
    assert parent_card(str(tmp_path / "missing")) == {}


def test_spec_details_and_data_sources(tiny, stock_tiny):
    assert latent_spec_details(tiny[0])["Latent size K"] == "4"
    assert latent_spec_details(tiny[0])["Model family"] == "Qwen2.5-VL"  # the card names the family
    assert latent_spec_details(stock_tiny[0]) == {"Model family": "Qwen2.5-VL"}
    records = datasets.Dataset.from_dict({"source": ["/d/a.jsonl:1", "/d/a.jsonl:2", "/d/b.parquet:row 0"]})
    assert data_sources(records) == ["a.jsonl", "b.parquet"]  # names only: no local path in a card


def test_training_data_details():
    records = datasets.Dataset.from_dict({"source": ["/d/a.jsonl:1", "/d/b.jsonl:1"]})
    visual = VisualOptions(fps=2.0, max_frames=8, min_pixels=784, max_pixels=3136)
    assert training_data_details(records, visual) == {
        "Training data": "`a.jsonl`, `b.jsonl`",
        "Video sampling": "2.0 fps, at most 8 frames, 784–3136 pixels per frame",
    }
    assert training_data_details(None, visual)["Training data"] == "in-memory dataset"


def test_base_model_follows_local_cards_to_the_hub_and_never_names_a_local_path(tmp_path):
    assert base_model_of("Qwen/Qwen2.5-VL-3B-Instruct") == (
        "Qwen/Qwen2.5-VL-3B-Instruct", "[Qwen/Qwen2.5-VL-3B-Instruct](https://huggingface.co/Qwen/Qwen2.5-VL-3B-Instruct)")
    dift = tmp_path / "dift"
    dift.mkdir()
    assert base_model_of(str(dift)) == (None, "a local checkpoint, `dift`")
    (dift / "README.md").write_text("---\nbase_model: Qwen/Qwen2.5-VL-3B-Instruct\n---\n# card\n")
    base, named = base_model_of(str(dift))
    assert base == "Qwen/Qwen2.5-VL-3B-Instruct" and "(through the local checkpoint `dift`)" in named
    assert str(tmp_path) not in named
