"""Model-card helpers (the trainer-level card is checked in test_trainer.py)."""

from __future__ import annotations

import datasets

from trl_latent.data import VisualOptions
from trl_latent.model_card import (
    SECTION_TITLE,
    base_model_of,
    data_sources,
    insert_section,
    latent_spec_details,
    render_section,
    training_data_details,
)

TRL_CARD = "# Model Card for x\n\nbody\n\n## Citations\n\nCite TRL as: ...\n"


def test_section_goes_before_citations_and_replaces_an_older_one():
    first = insert_section(TRL_CARD, render_section({"Latent size K": "4"}))
    assert first.index(SECTION_TITLE) < first.index("## Citations") and "| Latent size K | 4 |" in first
    second = insert_section(first, render_section({"Latent size K": "8"}))
    assert second.count(SECTION_TITLE) == 1 and "| Latent size K | 8 |" in second and "| 4 |" not in second
    assert second.endswith("Cite TRL as: ...\n")


def test_section_is_appended_to_a_card_without_citations():
    assert insert_section("# card\n", render_section({"a": "b"})).startswith("# card\n\n" + SECTION_TITLE)


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
