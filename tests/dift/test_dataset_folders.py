"""``trl-latent dift --dataset_name <export> --dataset_config dift`` trains on the rows of the files named, under the
user's default ``datasets`` cache: two exports sharing a folder name, and an export edited in place, each load as
themselves (``load_dataset(folder, config)`` alone served the first export's rows for both, datasets 5.2)."""

from __future__ import annotations

import pytest
from dift_data import dift_record, write_jsonl

from datagen.export import dataset_card
from trl_latent.data import DataRecordError
from trl_latent.scripts import dift as dift_script
from trl_latent.testing import save_tiny_checkpoint


def write_export(root, rows: int, tag: str):
    """A datagen-style export folder (``<root>/export``: ``dift.jsonl`` and the README naming it) of ``rows`` records
    whose questions carry ``tag``."""
    folder = root / "export"
    records = [dift_record(folder, i, num_imagery=1) | {"text_input": f"{tag} question {i}?"} for i in range(rows)]
    write_jsonl(folder / "dift.jsonl", records)
    (folder / "README.md").write_text(dataset_card({"dift": "dift.jsonl"}))
    return folder


@pytest.fixture
def trained_questions(tmp_path, monkeypatch):
    """Run ``trl-latent dift`` up to the built trainer (the model and the training set it would train on) and return
    the training questions; the cache is the default one of a user whose home is the test's folder."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home" / ".cache" / "huggingface"))
    monkeypatch.delenv("HF_DATASETS_CACHE", raising=False)
    checkpoint, _ = save_tiny_checkpoint(tmp_path / "tiny", latent_size=4)
    seen: list[list[str]] = []
    monkeypatch.setattr(dift_script, "train_and_save",
                        lambda trainer, *args: seen.append([p.split("\n")[0] for p in trainer.train_dataset["prompt"]]))

    def run(export) -> list[str]:
        code = dift_script.main(["--model_name_or_path", str(checkpoint), "--dataset_name", str(export),
                                 "--dataset_config", "dift", "--output_dir", str(tmp_path / "out"),
                                 "--use_cpu", "true", "--report_to", "none", "--check_media", "false"])
        assert code == 0
        return seen[-1]

    return run


def test_exports_sharing_a_name_and_an_edited_export_load_as_themselves(tmp_path, trained_questions):
    first = write_export(tmp_path / "run_a", rows=6, tag="first")
    second = write_export(tmp_path / "run_b", rows=3, tag="second")
    assert trained_questions(first) == [f"first question {i}?" for i in range(6)]
    assert trained_questions(second) == [f"second question {i}?" for i in range(3)]
    write_export(tmp_path / "run_a", rows=2, tag="edited")  # the first export cut and rewritten in place
    assert trained_questions(first) == [f"edited question {i}?" for i in range(2)]


def test_dift_target_answer_outside_the_options_is_rejected(tmp_path):
    root = tmp_path / "data"
    rows = [dift_record(root, 0, num_imagery=1) | {"text_input": "Which way?\nA. left\nB. right\nC. up\nD. down"}]
    good = write_jsonl(root / "good.jsonl", rows)
    bad = write_jsonl(root / "bad.jsonl", rows + [rows[0] | {"text_output": rows[0]["text_output"].replace(
        "<answer>B</answer>", "<answer>E</answer>")}])
    args = ["--model_name_or_path", str(save_tiny_checkpoint(tmp_path / "tiny", latent_size=4)[0]),
            "--output_dir", str(tmp_path / "out"), "--use_cpu", "true", "--max_steps", "0"]
    with pytest.raises(DataRecordError, match=rf"{bad}:2: field 'text_output': the answer 'E' is not among the "
                                              r"options of text_input \(A, B, C, D\)"):
        dift_script.main(["--dataset_name", str(bad), *args])
    from trl_latent.data import load_records

    assert load_records(good)["text_output"] == [rows[0]["text_output"]]  # the same record with B is accepted
