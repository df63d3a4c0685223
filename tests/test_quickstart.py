"""``trl-latent quickstart`` shortened to tiny sizes: every stage runs for real and writes every artifact."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

from datagen.export import QUESTION_TYPES
from trl_latent.cli_eval import latest_samples
from trl_latent.quickstart import ARM_LABELS, PROBE_CACHE, Quickstart, main
from trl_latent.quickstart.config import QuickstartConfig
from trl_latent.quickstart.diagnostics import SAMPLES_FILE
from trl_latent.quickstart.report import Score, scores_from_samples
from trl_latent.quickstart.stats import load_outcomes
from trl_latent.tokens import get_latent_spec

TINY = [
    "--num_clips", "4", "--heldout_fraction", "0.5", "--image_size", "56", "--imagery_size", "56",
    "--num_frames", "4", "--model_size", "tiny", "--latent_size", "2", "--vocab_size", "600",
    "--sft_steps", "2", "--batch_size", "2", "--grpo_steps", "1", "--grpo_batch_size", "2", "--num_generations", "2",
    "--max_new_tokens", "24", "--eval_limit", "3", "--diagnostics_limit", "2", "--eval_batch_size", "3",
    "--workers", "1", "--progress", "false",
    "--perception_clips", "6", "--perception_steps", "2", "--ablations", "k1", "calib", "centred", "centred_calib",
    "first_frame", "motion", "contrast", "contrast_reversed", "text_first_frame", "--first_frame_share", "0.5",
    "--stage2_steps", "1", "--threads", "1",
    "--families", *QUESTION_TYPES,  # four tiny clips: every family, so the held-out set is never empty
]
ARMS = ("sft_text", "dift", "dift_grpo", "dift_stage2", "dift_k1", "dift_calib", "dift_centred", "dift_centred_calib",
        "dift_first_frame", "dift_motion", "dift_contrast", "dift_contrast_reversed", "sft_text_first_frame")
LATENT_ARMS = tuple(arm for arm in ARMS if not arm.startswith("sft_"))  # the text-only arm and its control have none
STAGES = ["synthesize", "datagen", "perception", "build_model", "build_model_k1",
          *(f"{kind}_{arm}" for kind in ("train", "eval") for arm in ARMS), *(f"diagnose_{arm}" for arm in LATENT_ARMS)]


@pytest.fixture(scope="module")
def perception_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("perception_cache")


@pytest.fixture(scope="module")
def run(tmp_path_factory, perception_cache):
    out = tmp_path_factory.mktemp("quickstart")
    assert main(["--output_dir", str(out), *TINY, "--perception_cache", str(perception_cache)]) == 0
    return out


@pytest.mark.slow
def test_writes_every_artifact(run, perception_cache):
    for name in ("report.md", "report.json", "quickstart_config.json", "losses.png", "rewards.png",
                 "accuracy_by_type.png"):
        assert (run / name).stat().st_size > 0, name
    assert sorted(p.name for p in (run / ".done").iterdir()) == sorted(STAGES)
    assert (run / "world" / "metadata.csv").is_file()
    for name in ("dift.jsonl", "dift_text_only.jsonl", "rl.jsonl", "benchmark/benchmark.parquet"):
        assert (run / "data" / "export" / name).is_file(), name

    # every arm is a loadable latent checkpoint with a trained history; the tokenizer is the corpus one
    processor = AutoProcessor.from_pretrained(run / "models" / "init")
    assert len(processor.tokenizer) < 700
    for arm in ARMS:
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(run / "models" / arm)
        assert get_latent_spec(model).latent_size == (1 if arm == "dift_k1" else 2)
        state = json.loads((run / "models" / arm / "trainer_state.json").read_text())
        assert state["global_step"] == (1 if arm in ("dift_grpo", "dift_stage2") else 2)
        # only the calibrated arms record their targets' norm, about the mean target in the centred one (the others
        # are the release: none); the card says which
        spec = get_latent_spec(model)
        assert (spec.feedback_norm is not None) == (arm in ("dift_calib", "dift_centred_calib"))
        assert (spec.feedback_center is not None) == (arm == "dift_centred_calib")
        card = (run / "models" / arm / "README.md").read_text()
        assert ("deviation from it, rescaled to norm" in card) == (arm == "dift_centred_calib"), arm
        # only the first-frame arms (DIFT and its text-only control) cut rows to their first frame
        assert ("(first_frame_share 0.5) saw only their video's first frame" in card) == arm.endswith("first_frame")
        assert ("`dift_text_only.jsonl`" in card) == arm.startswith("sft_"), arm  # the control trains on text-only rows
        assert get_latent_spec(model).imagery == ("motion" if arm == "dift_motion" else "still")
        # only the contrast arms train (and log) the imagery contrast, each with its negatives
        logged = [entry for entry in state["log_history"] if "contrast_margin" in entry]
        assert bool(logged) == arm.startswith("dift_contrast"), arm
    for arm, negatives in (("dift_contrast", "another row's imagery"),
                           ("dift_contrast_reversed", "its imagery reversed")):
        card = (run / "models" / arm / "README.md").read_text()
        assert f"0.1 × softplus(log p(text after the block | {negatives})" in card, arm
    for arm in LATENT_ARMS:  # only the centred arms' similarity loss subtracts the mean target
        card = (run / "models" / arm / "README.md").read_text()
        assert ("imagery target[t] − μ" in card) == (arm in ("dift_centred", "dift_centred_calib")), arm

    # every arm starts from the cached pretrained tower; the K variants of the initial model differ in config only
    (tower_folder,) = [p for p in perception_cache.iterdir() if not p.name.startswith(".")]
    tower = load_file(tower_folder / "vision_tower.safetensors")
    init = Qwen2_5_VLForConditionalGeneration.from_pretrained(run / "models" / "init").state_dict()
    init_k1 = Qwen2_5_VLForConditionalGeneration.from_pretrained(run / "models" / "init_k1").state_dict()
    assert all(torch.equal(init[f"model.visual.{key}"], value) for key, value in tower.items())
    assert init.keys() == init_k1.keys() and all(torch.equal(init[k], init_k1[k]) for k in init)

    report = json.loads((run / "report.json").read_text())
    assert set(report["arms"]) == {ARM_LABELS[arm] for arm in ARMS} and report["seed"] == 0
    assert report["numerics"]["threads"] == 1 and report["numerics"]["env"]["MKL_CBWR"] == "AVX2"
    pairs = [(p["a"], p["b"]) for p in report["statistics"]["paired"]]
    assert pairs == [("text-only SFT", "DIFT"), ("DIFT", "DIFT + 4DRL"), ("DIFT", "DIFT, stage 2 (self-fed)"),
                     ("DIFT", "DIFT with K = 1"), ("DIFT", "DIFT, calibrated feedback"),
                     ("DIFT", "DIFT, centred similarity"), ("DIFT", "DIFT, centred similarity and feedback"),
                     ("DIFT", "DIFT, first-frame rows"), ("DIFT", "DIFT, motion imagery"),
                     ("DIFT", "DIFT, swapped-imagery contrast"), ("DIFT", "DIFT, reversed-imagery contrast"),
                     ("text-only SFT", "text-only SFT, first-frame rows"),
                     *[("text-only SFT", ARM_LABELS[arm]) for arm in LATENT_ARMS  # each DIFT ablation
                       if arm not in ("dift", "dift_grpo", "dift_stage2")],
                     ("text-only SFT, first-frame rows", "DIFT, first-frame rows")]  # the same rows, with imagery
    for arm in ARMS:  # oracle / swapped diagnostics of every latent arm, as fractions, per family
        diagnostics = report["arms"][ARM_LABELS[arm]].get("diagnostics")
        assert (diagnostics is not None) == (arm in LATENT_ARMS)
        if diagnostics:
            assert diagnostics["imagination_gap"] == pytest.approx(diagnostics["oracle"] - diagnostics["self_fed"])
            assert diagnostics["content_dependence"] == pytest.approx(diagnostics["self_fed"] - diagnostics["swapped"])
            # the first --diagnostics_limit of the --eval_limit questions
            assert diagnostics["by_family"]["overall"]["n"] == 2 and diagnostics["questions_with_imagery"] >= 1
            near = diagnostics["closeness"]  # where its own latents lie among the targets (None: no whole block)
            assert near is None or (1 <= near["n"] <= 2 and -1 <= near["own_centred"] <= 1), near
            # self-fed is the lmms-eval run: its answers, matched question by question
            evaluated = load_outcomes(latest_samples(run / "eval" / arm, "dsr_bench_think")).questions
            self_fed = load_outcomes(run / "diagnostics" / arm / "self_fed" / SAMPLES_FILE).questions
            assert list(self_fed) == list(evaluated)[:2]
            assert all(self_fed[k].response == evaluated[k].response for k in self_fed)
            # headroom: the oracle answers against text-only's on the same (diagnosed) questions
            oracle = load_outcomes(run / "diagnostics" / arm / "oracle" / SAMPLES_FILE).questions
            text_only = load_outcomes(latest_samples(run / "eval" / "sft_text", "dsr_bench_think")).questions
            assert diagnostics["by_family"]["overall"]["headroom"]["n"] == 2
            assert diagnostics["headroom"] == pytest.approx(
                sum(oracle[k].correct - text_only[k].correct for k in oracle) / 2)
            # the answer probes: one entry per held-out family, fitted on that family's training questions
            for family, probe in diagnostics["probe"].items():
                assert probe["n_heldout"] >= 1 and 0 <= probe.get("targets", 0) <= 1, (family, probe)
    # the imagery-target probes depend on the tower, the imagery and K only: computed once per distinct triple (the
    # frozen-tower arms dift, stage 2, calibrated, both centred, first-frame and both contrasts share one; K = 1 and
    # motion imagery have their own; 4DRL trains the tower, so it shares only when its one step left the tower as it
    # was)
    triples: list[tuple[str, int, dict[str, torch.Tensor]]] = []
    for arm in LATENT_ARMS:
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(run / "models" / arm)
        spec, tower = get_latent_spec(model), model.model.visual.state_dict()
        if not any(spec.imagery == i and spec.latent_size == k and all(torch.equal(tower[n], t[n]) for n in tower)
                   for i, k, t in triples):
            triples.append((spec.imagery, spec.latent_size, tower))
    assert len(triples) in (3, 4) and len(list((run / "diagnostics" / PROBE_CACHE).iterdir())) == len(triples)
    probes = {arm: report["arms"][ARM_LABELS[arm]]["diagnostics"]["probe"] for arm in LATENT_ARMS}
    for arm in ("dift_stage2", "dift_calib", "dift_centred", "dift_centred_calib", "dift_first_frame",
                "dift_contrast", "dift_contrast_reversed"):
        assert {f: (p["n_train"], p.get("targets")) for f, p in probes[arm].items()} == \
            {f: (p["n_train"], p.get("targets")) for f, p in probes["dift"].items()}
    assert report["perception"]["clips"] == {"train": 5, "heldout": 1}
    for arm, scores in report["arms"].items():
        samples = scores_from_samples(latest_samples(run / "eval" / _key(arm), "dsr_bench_think"))
        assert scores["overall"]["total"] == samples["overall"].total == 3
        assert scores["overall"]["letters"] == samples["overall"].letters and samples["overall"].answered <= 3
        low, high = scores["overall"]["ci95"]
        assert low <= scores["overall"]["accuracy"] <= high
    text = (run / "report.md").read_text()
    assert "Chance level: " in text and all(ARM_LABELS[arm] in text for arm in ARMS)
    assert "## Paired differences" in text and "## Perception pretraining" in text
    assert "## Do the latents carry content?" in text and "| imagination gap | content dependence | headroom |" in text
    assert "![losses](losses.png)" in text and "![rewards](rewards.png)" in text
    assert text.count("about the mean target)") == 1  # the centred calibration, named in its arm's diagnosis line


@pytest.mark.slow
def test_diagnostics_answer_in_the_evaluations_dtype(run):
    """The oracle and swapped passes load the arm as its evaluation did (here bfloat16 on the CPU), so they differ from
    the evaluation's self-fed answers by the latents alone."""
    from lmms_eval_dsr.benchmarks import load_dsr_bench
    from trl_latent.quickstart.diagnostics import _Runner, heldout_imagery

    config = json.loads((run / "quickstart_config.json").read_text())
    runner = _Runner(run / "models" / "dift", fps=config["fps"], max_frames=config["num_frames"],
                     max_pixels=config["image_size"] ** 2, max_new_tokens=8, batch_size=2, device="cpu",
                     dtype="bfloat16")
    assert runner.lmm.model.dtype == torch.bfloat16
    rows = load_dsr_bench(run / "data" / "export" / "benchmark").rows[:2]
    targets = runner.targets(heldout_imagery(run / "data", rows), config["imagery_size"] ** 2)
    assert any(t is not None and t.shape[-1] == runner.lmm.model.config.text_config.hidden_size for t in targets)
    assert len(runner.answer(rows, targets)) == 2


def _stand_in_entry_points(monkeypatch, tmp_path_factory) -> list[str]:
    """Replace what the stages call (trainers, evaluation, datagen) with recorders; the stages themselves run as
    written, so they read the settings they read for real. Returns the list of ``"<entry>:<output folder>"``."""
    import datagen
    import datagen.synthetic
    from trl_latent import cli_eval, testing
    from trl_latent.quickstart import perception
    from trl_latent.scripts import dift, grpo

    ran = []

    def recorder(entry):
        def record(argv):
            flag = "--output_path" if entry == "eval" else "--output_dir"
            ran.append(f"{entry}:{Path(argv[argv.index(flag) + 1]).name}")
            return 0
        return record

    monkeypatch.setattr(dift, "main", recorder("dift"))
    monkeypatch.setattr(grpo, "main", recorder("grpo"))
    monkeypatch.setattr(cli_eval, "main", recorder("eval"))
    monkeypatch.setattr(datagen.synthetic, "write_dataset", lambda *args, **kwargs: ran.append("synthesize"))
    monkeypatch.setattr(datagen, "run_pipeline", lambda config: ran.append("datagen"))

    class Model:
        def save_pretrained(self, path):
            ran.append(f"build_model:{Path(path).name}")

    class Processor:
        def save_pretrained(self, path):
            pass

    monkeypatch.setattr(testing, "build_tiny", lambda *args, **kwargs: (Model(), None))
    monkeypatch.setattr(testing, "build_processor", lambda *args, **kwargs: Processor())
    monkeypatch.setattr(testing, "corpus_tokenizer", lambda *args, **kwargs: None)
    monkeypatch.setattr(perception, "load_tower", lambda model, folder: None)

    def tower(*args, **kwargs):
        ran.append("perception")
        return tmp_path_factory.mktemp("tower")

    monkeypatch.setattr(perception, "cached_tower", tower)
    monkeypatch.setattr(Quickstart, "_training_texts", lambda self: [])
    from trl_latent.quickstart import diagnostics

    monkeypatch.setattr(diagnostics, "run_diagnostics",
                        lambda model_dir, *args, **kwargs: ran.append(f"diagnose:{Path(model_dir).name}"))
    return ran


@pytest.mark.slow
def test_rerun_skips_finished_stages_and_redoes_a_removed_one(run, monkeypatch, capsys, tmp_path_factory):
    ran = _stand_in_entry_points(monkeypatch, tmp_path_factory)
    before = (run / "report.json").read_text()
    (run / ".done" / "train_sft_text").unlink()
    Quickstart(_config(run)).run()
    assert ran == ["dift:sft_text"]  # only the stage whose marker was removed (redone alike: its eval stands)
    assert capsys.readouterr().out.count("done earlier, skipped") == len(STAGES) - 1
    assert (run / "report.json").read_text() == before


def test_an_evaluation_finished_by_an_older_quickstart_is_redone(run):
    """Evaluations of format 1 saved no latents, which the diagnoses now read, datagen of format 1 did not record
    ``visible_fraction`` and diagnoses of format 1 not the counterfactual ablations: their markers no longer match,
    while a marker without a format of any other stage does."""
    quickstart = Quickstart(_config(run))
    for stage, current in (("eval_dift", 2), ("datagen", 2), ("diagnose_dift", 2), ("train_dift", 1)):
        done = json.loads((run / ".done" / stage).read_text())
        assert done["format"] == current and quickstart._changes(stage, done, done["upstream"]) == []
        del done["format"]
        expected = ["output format 1 -> 2 (an older quickstart)"] if current == 2 else []
        assert quickstart._changes(stage, done, done["upstream"]) == expected


@pytest.mark.slow
def test_rerun_with_other_settings_redoes_exactly_what_they_change(run, monkeypatch, capsys, tmp_path_factory,
                                                                   perception_cache):
    """Runs after the tests above: it leaves the folder with stand-in stages and no report."""
    ran = _stand_in_entry_points(monkeypatch, tmp_path_factory)
    monkeypatch.setattr(Quickstart, "report", lambda self: ran.append("report") or self.out / "quickstart_config.json")

    cache = ["--perception_cache", str(perception_cache)]
    Quickstart(_config(run, *cache, "--progress", "true", "--workers", "2")).run()  # settings that change no result
    assert ran == ["report"]
    ablations = TINY[TINY.index("--ablations") + 1:TINY.index("--first_frame_share")]
    marker, done = run / ".done" / "build_model", json.loads((run / ".done" / "build_model").read_text())
    done["settings"]["latent_sizes"] = [1, 2]  # as an older quickstart left it: it recorded every K it built
    marker.write_text(json.dumps(done))
    Quickstart(_config(run, *cache, "--ablations", *ablations, "k4")).run()
    # a K ablation added to a finished run: its initial checkpoint and its arm alone; dropped again, nothing is redone
    assert ran[1:] == ["build_model:init_k4", "dift:dift_k4", "eval:dift_k4", "diagnose:dift_k4", "report"]
    del ran[1:]
    Quickstart(_config(run, *cache)).run()
    assert ran[1:] == ["report"]
    del ran[1:]
    from trl_latent.quickstart import diagnostics

    loaded = []  # the diagnoses load each arm as its evaluation does
    monkeypatch.setattr(diagnostics, "run_diagnostics", lambda model_dir, *args, **kwargs: ran.append(
        f"diagnose:{Path(model_dir).name}") or loaded.append((kwargs["device"], kwargs["dtype"])))
    Quickstart(_config(run, *cache, "--eval_device", "auto")).run()
    # a setting only the evaluations read: the diagnoses are redone too, their self-fed answers are the evaluations'
    redone = [*(f"eval:{arm}" for arm in ARMS), *(f"diagnose:{arm}" for arm in LATENT_ARMS), "report"]
    assert ran[1:] == redone and set(loaded) == {("auto", "float32")}
    del ran[1:]
    Quickstart(_config(run, *cache)).run()  # and back
    assert ran[1:] == redone
    del ran[1:]
    marker, done = run / ".done" / "train_dift_grpo", json.loads((run / ".done" / "train_dift_grpo").read_text())
    del done["settings"]["grpo_conclusion_weight"]  # as a quickstart older than the conclusion reward left it
    marker.write_text(json.dumps(done))
    Quickstart(_config(run, *cache)).run()  # the setting the older marker lacks, at the value it ran with
    assert ran[1:] == ["report"]
    del ran[1:]
    grpo_redone = ["grpo:dift_grpo", "eval:dift_grpo", "diagnose:dift_grpo", "report"]
    Quickstart(_config(run, *cache, "--grpo_conclusion_weight", "1")).run()  # and at another: 4DRL alone
    assert ran[1:] == grpo_redone
    assert "train_dift_grpo: redone (grpo_conclusion_weight 0.0 -> 1.0)" in capsys.readouterr().out
    del ran[1:]
    Quickstart(_config(run, *cache)).run()  # and back
    assert ran[1:] == grpo_redone
    del ran[1:]
    Quickstart(_config(run, *cache, "--grpo_steps", "2")).run()
    assert ran[1:] == grpo_redone
    assert "train_dift_grpo: redone (grpo_steps 1 -> 2)" in capsys.readouterr().out
    assert not (run / "models" / "dift_grpo").exists()  # emptied before the stage was redone
    assert not (run / "report.md").exists() and not (run / "report.json").exists()  # the old numbers are gone
    assert json.loads((run / "quickstart_config.json").read_text())["grpo_steps"] == 2
    del ran[:]
    Quickstart(_config(run, *cache, "--grpo_steps", "2", "--eval_limit", "2")).run()
    assert ran == [*(f"eval:{arm}" for arm in ARMS), *(f"diagnose:{arm}" for arm in LATENT_ARMS), "report"]
    del ran[:]
    Quickstart(_config(run, *cache, "--grpo_steps", "2", "--eval_limit", "2", "--diagnostics_limit", "1")).run()
    assert ran == [*(f"diagnose:{arm}" for arm in LATENT_ARMS), "report"]
    del ran[:]
    Quickstart(_config(run, *cache, "--grpo_steps", "2", "--eval_limit", "2", "--sim_weight", "0.5")).run()
    # the similarity loss weights the DIFT arms' training only: the text-only arm stays
    assert "dift:sft_text" not in ran and {"dift:dift", "dift:dift_stage2", "dift:dift_k1"} <= set(ran)
    del ran[:]
    Quickstart(_config(run, *cache, "--grpo_steps", "2", "--eval_limit", "2", "--sim_weight", "0.5",
                       "--contrast_weight", "0.5")).run()
    assert ran == [*(f"dift:dift_contrast{n}" for n in ("", "_reversed")),  # their arms alone
                   *(f"eval:dift_contrast{n}" for n in ("", "_reversed")),
                   *(f"diagnose:dift_contrast{n}" for n in ("", "_reversed")), "report"]
    del ran[:]
    Quickstart(_config(run, *cache, "--grpo_steps", "2", "--eval_limit", "2", "--num_clips", "6")).run()
    # the pretrained tower does not depend on the clips: kept; one initial model per K, the old ones removed first
    assert ran[:5] == ["synthesize", "datagen", "build_model:init", "build_model:init_k1", "dift:sft_text"]
    assert not (run / "models" / "init_k1").exists()
    assert "perception" not in ran and len(ran) == len(STAGES)
    del ran[:]
    Quickstart(_config(run, *cache, "--grpo_steps", "2", "--eval_limit", "2", "--num_clips", "6",
                       "--perception_steps", "3")).run()
    assert ran[:3] == ["perception", "build_model:init", "build_model:init_k1"] and len(ran) == len(STAGES) - 1
    del ran[:]
    Quickstart(_config(run, *cache, "--grpo_steps", "2", "--eval_limit", "2", "--num_clips", "6",
                       "--perception_steps", "3", "--threads", "2")).run()
    # the thread count changes the numbers of every stage that runs tensors (the tower too), not the world or data
    assert ran[:3] == ["perception", "build_model:init", "build_model:init_k1"] and len(ran) == len(STAGES) - 1
    assert "synthesize" not in ran and "datagen" not in ran
    del ran[:]

    # a shared text-only base: trained once from the initial weights, and every arm continues from it
    from trl_latent.scripts import dift, grpo

    starts = {}
    for script in (dift, grpo):
        monkeypatch.setattr(script, "main", lambda argv, record=script.main: starts.update(
            {Path(argv[argv.index("--output_dir") + 1]).name: Path(argv[argv.index("--model_name_or_path") + 1])})
            or record(argv))
    now = [*cache, "--grpo_steps", "2", "--eval_limit", "2", "--num_clips", "6", "--perception_steps", "3",
           "--threads", "2", "--ablations", *(a for a in ablations if a != "k1")]
    Quickstart(_config(run, *now)).run()  # a K ablation dropped: nothing redone
    assert ran == ["report"]
    del ran[:]
    arms, latent_arms = [a for a in ARMS if a != "dift_k1"], [a for a in LATENT_ARMS if a != "dift_k1"]
    Quickstart(_config(run, *now, "--base_steps", "3")).run()
    trained = [*(f"dift:{arm}" for arm in ("text_base", "sft_text", "dift")), "grpo:dift_grpo",
               *(f"dift:{arm}" for arm in arms[3:])]
    redone = [*trained, *(f"eval:{arm}" for arm in arms), *(f"diagnose:{arm}" for arm in latent_arms), "report"]
    assert ran == redone
    assert starts.pop("text_base") == run / "models" / "init"
    assert starts.pop("dift_stage2") == starts.pop("dift_grpo") == run / "models" / "dift"  # DIFT's continuations
    assert set(starts.values()) == {run / "models" / "text_base"} and len(starts) == len(arms) - 2
    assert "train_sft_text: redone (now reads train_text_base's output)" in capsys.readouterr().out
    del ran[:]
    Quickstart(_config(run, *now, "--base_steps", "4")).run()
    assert ran == redone
    assert "train_text_base: redone (base_steps 3 -> 4)" in capsys.readouterr().out
    del ran[:]
    starts.clear()
    Quickstart(_config(run, *now)).run()  # and back: every arm from the initial weights again
    assert ran == redone[1:] and set(starts.values()) == {run / "models" / "init", run / "models" / "dift"}


@pytest.mark.slow
def test_no_latents_trains_and_reports_only_the_text_arm(tmp_path):
    assert main(["--output_dir", str(tmp_path), *TINY, "--no_latents", "true", "--perception", "false"]) == 0
    assert set(json.loads((tmp_path / "report.json").read_text())["arms"]) == {ARM_LABELS["sft_text"]}
    assert not (tmp_path / "models" / "dift").exists()
    rows = [json.loads(line) for line in (tmp_path / "data" / "export" / "dift_text_only.jsonl").open()]
    assert rows and all("<output_image>" not in row["text_output"] and not row["image_output"] for row in rows)


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--model_size", "huge", "model_size must be one of"),
    ("--image_size", "50", "image_size must be a multiple of 28"),
    ("--num_frames", "5", "num_frames must be even"),
    ("--heldout_fraction", "1.0", "heldout_fraction must be in"),
    ("--cot_style", "long", "cot_style must be one of"),
    ("--imagery_size", "28", "fewer than latent_size=4"),
    ("--diagnostics_limit", "0", "diagnostics_limit must be a positive number of questions"),
    ("--visible_fraction", "0", r"visible_fraction must be in \(0, 1\]"),
    ("--contrast_weight", "0", "contrast_weight must be positive"),
    ("--grpo_conclusion_weight", "-1", "grpo_conclusion_weight must be 0 \\(not used\\) or positive"),
    ("--base_steps", "-1", "base_steps must be 0 \\(no shared base\\) or positive"),
])
def test_bad_settings_are_named(flag, value, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        main(["--output_dir", str(tmp_path), flag, value])


def test_controls_pair_dift_ablations_with_text_only_ones():
    """Each control named for a DIFT ablation is a text-only ablation, so its report pair is (control, DIFT arm)."""
    from trl_latent.quickstart.config import ABLATIONS, CONTROLS, TEXT_ABLATIONS, ablation_arm

    assert set(CONTROLS) <= set(ABLATIONS) and set(CONTROLS.values()) <= set(TEXT_ABLATIONS)
    assert all(ablation_arm(c).startswith("sft_") and ablation_arm(d).startswith("dift_") for d, c in CONTROLS.items())


def test_study_preset_sets_defaults_and_explicit_flags_win():
    from trl_latent.quickstart import parse_config
    from trl_latent.quickstart.config import PRESETS

    study = parse_config(["--preset", "study"])
    assert study.output_dir == "runs/study" and study.ablations == PRESETS["study"]["ablations"]
    assert study.latent_sizes == [1, 2, 4, 8] and study.families == PRESETS["study"]["families"]
    assert parse_config(["--preset", "study", "--ablations", "no_sim", "--num_clips", "9"]).ablations == ["no_sim"]
    assert parse_config(["--preset", "study", "--ablations", "none"]).ablations == []
    assert parse_config(["--preset", "study", "--num_clips", "9"]).num_clips == 9
    assert study.diagnostics_limit == PRESETS["study"]["diagnostics_limit"] and parse_config([]).diagnostics_limit is None
    assert parse_config([]).ablations == [] and parse_config([]).output_dir == "runs/quickstart"
    with pytest.raises(ValueError, match="preset must be one of"):
        parse_config(["--preset", "huge"])
    with pytest.raises(ValueError, match="base_steps trains one shared base with latent_size=4, so it cannot start "
                       "ablation 'k1'"):
        parse_config(["--preset", "study", "--base_steps", "100"])
    assert parse_config(["--preset", "study", "--base_steps", "100", "--ablations", "no_sim", "k4"]).base_steps == 100
    with pytest.raises(ValueError, match="fewer than latent_size=8"):  # K = 8 needs 9 vision tokens per imagery image
        parse_config(["--ablations", "k8", "--imagery_size", "56"])


def test_wilson_interval():
    assert Score(0, 24).wilson() == pytest.approx((0.0, 0.1380), abs=1e-4)
    low, high = Score(12, 24).wilson()
    assert low == pytest.approx(1 - high) and low == pytest.approx(0.3143, abs=1e-4)
    assert Score(24, 24).wilson()[1] == 1.0


def test_scores_from_samples_count_answers_and_name_bad_lines(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps({"accuracy": {"correct": c, "group": g, "prediction": p}}) + "\n"
                            for c, g, p in [(1, "abs_dir", "B"), (0, "abs_dir", None), (0, "rel_dir", "C")]))
    scores = scores_from_samples(good)
    assert scores == {"overall": Score(1, 3, {"B": 1, "C": 1}), "abs_dir": Score(1, 2, {"B": 1}),
                      "rel_dir": Score(0, 1, {"C": 1})}
    assert scores["overall"].answered == 2 and scores["overall"].letter_bias() == "B 50%"
    bad = tmp_path / "samples.jsonl"
    bad.write_text(json.dumps({"accuracy": {"correct": 1, "group": "abs_dir"}}) + "\n" + json.dumps({"x": 1}) + "\n")
    with pytest.raises(ValueError, match="samples.jsonl:2: no per-question 'accuracy' record"):
        scores_from_samples(bad)


def _key(label: str) -> str:
    return next(key for key, value in ARM_LABELS.items() if value == label)


def _config(out, *flags: str) -> QuickstartConfig:
    from transformers import HfArgumentParser

    args = ["--output_dir", str(out), *TINY, *flags]
    (config,) = HfArgumentParser(QuickstartConfig).parse_args_into_dataclasses(args=args)
    return config


def test_seeds_run_the_quickstart_per_seed_and_report_the_spread(tmp_path, monkeypatch):
    """``--seeds``: one full run per seed in ``seed<k>/``, then every arm's and pair's spread over them, and each
    difference (a latent arm's diagnoses too) pooled over the seeds' questions from the answers the runs wrote."""
    right = {3: 5, 4: 7, 5: 6}  # of 10 questions, DIFT + 4DRL's; DIFT and text-only get 4 right in every seed

    def answers(path, correct, questions=10):  # on 5 videos, the first ``correct`` answered right
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps({
            "doc": {"video_id": f"v{i // 2}", "question": f"q{i}", "options": ["a", "b", "c", "d"]},
            "accuracy": {"group": "cam_dir", "answer": "A", "prediction": "A" if i < correct else "B"},
            "filtered_resps": [["A"]]}) + "\n" for i in range(questions)))

    def run(self):
        self.out.mkdir(parents=True)
        k = right[self.config.seed]
        for arm in self.arms:
            answers(self.out / "eval" / arm / f"2026_samples_{SAMPLES_FILE}", k if arm == "dift_grpo" else 4)
        for arm, variants in self.diagnosis_samples().items():  # diagnosed on the first 8 questions (a limit)
            for variant, correct in zip(("self_fed", "oracle", "swapped"), (k, 8, 0), strict=True):
                answers(variants[variant], correct, questions=8)
        conclusion = {"overall": {"n": 10, "letter_correct": 5, "recognised": 10, "conclusion_correct": 6,
                                  "agreeing": 9}}
        paired = [{"a": "DIFT", "b": "DIFT + 4DRL", "groups": {"overall": {
            "difference": k / 10 - 0.4, "ci95": [0.05, 0.5] if k == 7 else [-0.1, 0.4]}}}]
        diagnoses = {"by_family": {"overall": {"imagination_gap": {"difference": 1 - k / 8, "ci95": [0.2, 0.8]},
                                               "content_dependence": {"difference": k / 8, "ci95": [0.3, 0.9]},
                                               "headroom": {"difference": 0.5, "ci95": [0.1, 0.9]}}}}
        (self.out / "report.json").write_text(json.dumps({
            "arms": {"DIFT": {"overall": {"accuracy": 0.4}},
                     "DIFT + 4DRL": {"overall": {"accuracy": k / 10}, "diagnostics": diagnoses}},
            "statistics": {"paired": paired, "conclusions": {"DIFT": conclusion, "DIFT + 4DRL": conclusion}}}))

    monkeypatch.setattr(Quickstart, "run", run)
    assert main(["--output_dir", str(tmp_path), "--seeds", "3", "4", "5"]) == 0
    assert all((tmp_path / f"seed{seed}" / "report.json").is_file() for seed in right)
    spread = json.loads((tmp_path / "spread.json").read_text())
    assert spread["seeds"] == [3, 4, 5]
    rl = spread["arms"]["DIFT + 4DRL"]
    assert rl["accuracy"]["values"] == [0.5, 0.7, 0.6] and rl["accuracy"]["mean"] == pytest.approx(0.6)
    assert rl["accuracy"]["std"] == pytest.approx(0.1) and rl["agreement"]["mean"] == pytest.approx(0.9)
    (pair,) = spread["paired"]
    assert pair["difference"]["min"] == pytest.approx(0.1) and pair["ci95_excludes_zero"] == 1
    pooled = pair["pooled"]  # 18 vs 12 of 30; one video name per seed is its own cluster: 15, not 5
    assert (pooled["n"], pooled["videos"], pooled["b_only"], pooled["a_only"]) == (30, 15, 6, 0)
    assert pooled["difference"] == pytest.approx(0.2) and pooled["p_mcnemar"] == pytest.approx(2 / 2**6)
    assert pooled["ci95"][0] > 0 and pooled["ci95"][1] < 0.5
    gap, content, headroom = rl["imagination_gap"], rl["content_dependence"], rl["headroom"]
    assert gap["difference"]["values"] == pytest.approx([3 / 8, 1 / 8, 2 / 8]) and gap["ci95_excludes_zero"] == 3
    assert gap["pooled"]["difference"] == pytest.approx(6 / 24) and content["pooled"]["difference"] == pytest.approx(
        18 / 24) and content["pooled"]["b_only"] == 18
    # oracle − text-only on the 8 diagnosed questions of each seed (text-only's other 2 left out): 4 of 8 more
    assert (headroom["pooled"]["n"], headroom["pooled"]["b_only"], headroom["pooled"]["a_only"]) == (24, 12, 0)
    assert "imagination_gap" not in spread["arms"]["DIFT"]  # no diagnostics in its report
    text = (tmp_path / "spread.md").read_text()
    assert "| DIFT + 4DRL | 50.0, 70.0, 60.0 | 60.0 | 10.0 | 50.0 to 70.0 | 90.0 |" in text
    # over seeds: +20 ± t(2 df) 4.303 × 10 / √3 = ±24.8 — wide where the pooled interval (above) excludes 0
    assert pair["difference"]["ci95"] == pytest.approx([0.2 - 0.24842, 0.2 + 0.24842], abs=1e-4)
    assert ("| DIFT + 4DRL − DIFT | +10.0, +30.0, +20.0 | +20.0 | 10.0 | +10.0 to +30.0 | -4.8 to +44.8 | 1 of 3 | "
            "+20.0 (") in text
    assert "| DIFT + 4DRL | content dependence | +62.5, +87.5, +75.0 | +75.0 |" in text
    assert ("| DIFT + 4DRL | headroom | +50.0, +50.0, +50.0 | +50.0 | 0.0 | +50.0 to +50.0 | +50.0 to +50.0 | 3 of 3 | "
            "+50.0 (") in text
    with pytest.raises(ValueError, match="seeds must be distinct"):
        main(["--output_dir", str(tmp_path), "--seeds", "1", "1"])


@pytest.mark.parametrize("weight", [None, "0", "conclusion"])
def test_4drl_arm_rewards_letters_that_follow_the_reasoning(tmp_path, monkeypatch, weight):
    """The 4DRL stage's command line, read back by the ``trl-latent grpo`` parser: the consistency reward next to
    the release's two (or the conclusion reward in its place), a KL anchor to the DIFT model, unscaled group
    advantages, several prompts per step."""
    from trl_latent.grpo import LatentGRPOConfig
    from trl_latent.quickstart import parse_config
    from trl_latent.scripts import _common, grpo

    seen = []
    monkeypatch.setattr(grpo, "main", lambda argv: seen.append(argv) or 0)
    flags = ["--output_dir", str(tmp_path)] + {
        None: [], "0": ["--grpo_consistency_weight", "0"],
        "conclusion": ["--grpo_consistency_weight", "0", "--grpo_conclusion_weight", "0.5"]}[weight]
    Quickstart(parse_config(flags)).train_grpo()
    (tmp_path / "models" / "dift").mkdir(parents=True)
    (tmp_path / "models" / "dift" / "config.json").write_text("{}")  # the parser checks a saved model is there
    script, args, _ = _common.parse_recipe(grpo.LatentGRPOScriptArguments, LatentGRPOConfig, seen[0], command="grpo",
                                           dataset_help="", model_help="")
    names = [path.rsplit(".", 1)[1] for path in script.reward_funcs]
    if weight == "0":  # the release's rewards
        assert names == ["accuracy", "format"] and args.reward_weights == [1.0, 0.2]
    elif weight == "conclusion":
        assert names == ["accuracy", "format", "conclusion"] and args.reward_weights == [1.0, 0.2, 0.5]
    else:
        assert names == ["accuracy", "format", "consistency"] and args.reward_weights == [1.0, 0.2, 1.0]
    assert args.beta > 0 and args.scale_rewards == "none"
    assert args.per_device_train_batch_size // args.num_generations >= 4  # prompts per optimizer step


def _without(argv: list[str], *flags: str) -> list[str]:
    """``argv`` less each of ``flags`` and its value."""
    kept = list(argv)
    for flag in flags:
        at = kept.index(flag)
        del kept[at : at + 2]
    return kept


def test_counterfactual_contrast_trains_on_the_twin_worlds_imagery(monkeypatch, tmp_path, tmp_path_factory):
    """``--ablations contrast_counterfactual``: the world's twin is rendered and run through datagen, and the arm trains
    on ``dift.jsonl`` with each question given its twin's imagery where the twin's answer differs (the trainings here
    stand-ins; the loss itself is tests/dift/test_contrast.py's)."""
    import datagen
    import datagen.synthetic
    from lmms_eval_dsr.benchmarks import load_dsr_bench
    from trl_latent.quickstart import diagnostics
    from trl_latent.scripts import dift

    real = datagen.synthetic.write_dataset, datagen.run_pipeline
    _stand_in_entry_points(monkeypatch, tmp_path_factory)
    monkeypatch.setattr(datagen.synthetic, "write_dataset", real[0])
    monkeypatch.setattr(datagen, "run_pipeline", real[1])
    argvs, record = {}, dift.main

    def train(argv):
        argvs[Path(argv[argv.index("--output_dir") + 1]).name] = argv
        return record(argv)

    monkeypatch.setattr(dift, "main", train)
    flags = ["--num_clips", "12", "--families", "abs_ori", "abs_dir", "--visible_fraction", "0.5", "--perception",
             "false", "--ablations", "contrast_counterfactual"]
    diagnosed = {}
    monkeypatch.setattr(diagnostics, "run_diagnostics",
                        lambda model_dir, *args, **kwargs: diagnosed.setdefault(Path(model_dir).name, kwargs))
    monkeypatch.setattr(Quickstart, "report", lambda self: self.out / "quickstart_config.json")
    Quickstart(_config(tmp_path, *flags)).run()
    stages = [line.name for line in sorted((tmp_path / ".done").iterdir())]
    assert {"synthesize_twin", "datagen_twin", "train_dift_contrast_counterfactual"} <= set(stages)
    argv = argvs["dift_contrast_counterfactual"]
    assert argv[argv.index("--dataset_name") + 1].endswith("dift_counterfactual.jsonl")
    assert argv[argv.index("--latent_contrast_negatives") + 1] == "counterfactual"
    assert argv[argv.index("--latent_contrast_span") + 1] == "continuation"
    assert argvs["dift"][argvs["dift"].index("--dataset_name") + 1].endswith("/dift.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "data" / "export" / "dift_counterfactual.jsonl").open()]
    plain = [json.loads(line) for line in (tmp_path / "data" / "export" / "dift.jsonl").open()]
    assert [{k: v for k, v in row.items() if k != "counterfactual_output"} for row in rows] == plain
    paired = [row for row in rows if row["counterfactual_output"]]
    assert paired, "no question of the twin world has another answer"
    asked = 0  # the twin is asked the clip's object questions word for word (those its motion leaves answerable)
    for path in (tmp_path / "data_twin" / "qa" / "object").glob("*.json"):
        twin = {q["question"] for q in json.loads(path.read_text())}
        original = json.loads((tmp_path / "data" / "qa" / "object" / path.name).read_text())
        assert twin <= {q["question"] for q in original}
        asked += len(twin)
    assert asked
    export = tmp_path / "data" / "export"
    for row in paired:  # the twin's imagery of the same question, one image per image
        assert len(row["counterfactual_output"]) == len(row["image_output"])
        assert all((export / p).resolve().is_relative_to(tmp_path / "data_twin") for p in row["counterfactual_output"])
    with pytest.raises(ValueError, match="set --visible_fraction below 1"):
        _config(tmp_path, "--ablations", "contrast_counterfactual")

    # every latent arm is diagnosed with the twin's questions too: fed a twin's imagery, how often is the answer the
    # twin's? (a stand-in runner that answers what its imagery shows: steering +100 points)
    assert {kwargs["twin_data_dir"] for kwargs in diagnosed.values()} == {tmp_path / "data_twin"}
    assert {"dift", "dift_grpo", "dift_contrast_counterfactual"} <= set(diagnosed)
    heldout = load_dsr_bench(export / "benchmark").rows
    images = diagnostics.heldout_imagery(tmp_path / "data", heldout)
    twins = diagnostics.twin_questions(tmp_path / "data_twin", heldout, images)
    assert twins and all(heldout[i]["answer"] != twin["answer"] and heldout[i]["options"] == twin["options"]
                         and len(shown) == len(images[i]) for i, twin, shown in twins)

    class Runner:
        def targets(self, images, imagery_max_pixels):
            return [twin["answer"] for _, twin, shown in twins if shown in images]

        def answer(self, rows, given):
            return [f"<think>so</think><answer>{letter}</answer>" for letter in given]

    own = [f"<think>so</think><answer>{row['answer']}</answer>" for row in heldout]
    result = diagnostics._twin_steering(Runner(), heldout, twins, own, 784, tmp_path / "steer", seed=0)
    assert result["n"] == len(twins) and (result["twin"], result["twin_oracle"]) == (1.0, 0.0)
    assert result["steering"]["difference"] == 1.0

    # a second twin arm, the same contrast scoring only the reasoning, added to the run: it alone trains and is
    # diagnosed (the twin world and the other arms' diagnoses are kept)
    argvs.clear(), diagnosed.clear()
    Quickstart(_config(tmp_path, *flags, "contrast_counterfactual_reasoning")).run()
    assert set(argvs) == set(diagnosed) == {"dift_contrast_counterfactual_reasoning"}
    reasoning = argvs["dift_contrast_counterfactual_reasoning"]
    assert reasoning[reasoning.index("--latent_contrast_span") + 1] == "reasoning"
    assert _without(reasoning, "--output_dir", "--latent_contrast_span") == _without(
        argv, "--output_dir", "--latent_contrast_span")
