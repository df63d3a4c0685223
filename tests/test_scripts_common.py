"""``trl_latent.scripts._common``: the recipe parsing both training scripts share (training itself: tests/dift, tests/grpo)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from trl_latent.dift import LatentImageryConfig
from trl_latent.grpo import LatentGRPOConfig
from trl_latent.scripts._common import parse_recipe
from trl_latent.scripts.dift import LatentImageryScriptArguments
from trl_latent.scripts.grpo import LatentGRPOScriptArguments


@pytest.mark.parametrize(
    ("script_class", "config_class"),
    [(LatentImageryScriptArguments, LatentImageryConfig), (LatentGRPOScriptArguments, LatentGRPOConfig)],
)
def test_model_options_reach_model_init_kwargs(script_class, config_class, tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")  # only looked up: parse_recipe checks the path, it loads nothing
    argv = ["--model_name_or_path", str(model), "--dataset_name", "d.jsonl", "--output_dir", str(tmp_path),
            "--dtype", "float32", "--use_cpu", "true", "--report_to", "none"]
    script_args, args, model_args = parse_recipe(script_class, config_class, argv, command="x", dataset_help="x",
                                                 model_help="y")
    assert isinstance(script_args, script_class) and isinstance(args, config_class)
    assert model_args.model_name_or_path == str(model)
    assert args.model_init_kwargs == {"revision": "main", "attn_implementation": None, "dtype": "float32"}


def test_missing_dataset_and_model_are_usage_errors(tmp_path, capsys):
    common = ["--output_dir", str(tmp_path), "--use_cpu", "true", "--report_to", "none"]
    with pytest.raises(SystemExit):
        parse_recipe(LatentImageryScriptArguments, LatentImageryConfig, ["--model_name_or_path", "m", *common],
                     command="dift", dataset_help="the DIFT data file", model_help="a checkpoint")
    assert "dataset_name (the DIFT data file) is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_recipe(LatentImageryScriptArguments, LatentImageryConfig, ["--dataset_name", "d.jsonl", *common],
                     command="dift", dataset_help="the DIFT data file", model_help="a checkpoint")
    assert "model_name_or_path (a checkpoint) is required" in capsys.readouterr().err


def test_a_mistyped_model_path_is_named(tmp_path, capsys):
    from huggingface_hub import constants

    # offline (as scripts/test.sh runs) the Hub is never asked; online the id is looked up and refused
    hub = "is not in the local Hub cache" if constants.HF_HUB_OFFLINE else "is not a model id the Hub resolves"
    common = ["--dataset_name", "d.jsonl", "--output_dir", str(tmp_path), "--use_cpu", "true", "--report_to", "none"]
    for name, needle in [(str(tmp_path / "chekpoint"), f"no folder {tmp_path / 'chekpoint'}"),
                         ("runs/dfit", f"'runs/dfit' {hub}"),
                         (str(tmp_path), f"{tmp_path} has no config.json")]:
        with pytest.raises(SystemExit):
            parse_recipe(LatentGRPOScriptArguments, LatentGRPOConfig, ["--model_name_or_path", name, *common],
                         command="grpo", dataset_help="the 4DRL data file", model_help="the DIFT checkpoint")
        error = capsys.readouterr().err
        assert "model_name_or_path (the DIFT checkpoint): " in error and needle in error, error


@pytest.mark.parametrize(("module", "command"), [("trl_latent.scripts.dift", "dift"), ("trl_latent.scripts.grpo", "grpo")])
def test_help_names_the_command_and_config_and_every_flag_has_help(module, command, capsys):
    import importlib

    with pytest.raises(SystemExit):
        importlib.import_module(module).main(["--help"])
    text = capsys.readouterr().out
    assert text.startswith(f"usage: trl-latent {command} [-h] [--config RECIPE.yaml]")
    assert "--per_device_train_batch_size PER_DEVICE_TRAIN_BATCH_SIZE, --per-device-train-batch-size" in text
    assert "--skip_invalid_samples [SKIP_INVALID_SAMPLES], --skip-invalid-samples" in text


@pytest.mark.parametrize(
    ("script_class", "config_class"),
    [(LatentImageryScriptArguments, LatentImageryConfig), (LatentGRPOScriptArguments, LatentGRPOConfig)],
)
def test_every_flag_has_help_text(script_class, config_class):
    from trl import ModelConfig, TrlParser

    parser = TrlParser((script_class, config_class, ModelConfig))
    assert [a.option_strings[0] for a in parser._actions if not (a.help or "").strip()] == []


def test_quickstart_flags_have_help_text_and_the_usage_names_the_command(capsys):
    from trl_latent.quickstart import main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert text.startswith("usage: trl-latent quickstart [-h] [--preset PRESET] [--output_dir OUTPUT_DIR]")
    assert "--num_clips NUM_CLIPS, --num-clips NUM_CLIPS" in text
    from transformers import HfArgumentParser

    from trl_latent.quickstart.config import QuickstartConfig

    parser = HfArgumentParser(QuickstartConfig)
    assert [a.option_strings[0] for a in parser._actions if not (a.help or "").strip()] == []


# --- the command line a person meets first (issue 23 item 4, issue 21 item 5) ----------------------------------------

TRL_LATENT = str(Path(sys.executable).parent / "trl-latent")
HEAVY = ("torch", "transformers", "trl", "deepspeed")
# `--help` measured 0.5–2.7 s wall (0.1–0.5 s CPU) on 2 cores shared with 7 other jobs (load ~12), where importing
# torch alone took 24 s and the TRL parser's help 17–260 s; the bound leaves CI load room and still fails an import
HELP_BOUND_S = 10.0
RECIPE_COMMANDS = [("dift", "LatentImageryScriptArguments", "--latent_size LATENT_SIZE"),
                   ("grpo", "LatentGRPOScriptArguments", "--mask_latent_start [MASK_LATENT_START]")]


@pytest.mark.parametrize("command", ["dift", "grpo", "init-tiny", "quickstart"])
def test_help_answers_at_once_without_importing_torch(command):
    start = time.monotonic()
    run = subprocess.run([TRL_LATENT, command, "--help"], capture_output=True, text=True, timeout=300)
    elapsed = time.monotonic() - start
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"usage: trl-latent {command} ") and elapsed < HELP_BOUND_S, elapsed
    probe = (f"import sys\nfrom trl_latent.cli import main\ntry:\n    main([{command!r}, '--help'])\n"
             f"except SystemExit:\n    pass\nprint('HEAVY', sorted(set({HEAVY!r}) & set(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert "HEAVY []" in loaded.stdout, loaded.stdout[-300:] + loaded.stderr[-2000:]


@pytest.mark.parametrize(("command", "first_class", "our_flag"), RECIPE_COMMANDS)
def test_help_lists_the_latent_options_first_then_trl_grouped(command, first_class, our_flag):
    text = subprocess.run([TRL_LATENT, command, "--help"], capture_output=True, text=True, timeout=300).stdout
    groups = [line[:-1] for line in text.splitlines() if line and not line.startswith(" ") and line.endswith(":")
              and line != "options:"]
    assert groups[0] == f"{first_class} (trl-latent)", groups
    ours = [i for i, g in enumerate(groups) if g.endswith("(trl-latent)")]
    assert ours == list(range(len(ours))) and {"ScriptArguments (TRL)", "TrainingArguments (transformers)",
                                                "ModelConfig (TRL)"} <= set(groups[len(ours):]), groups
    assert text.index(our_flag) < text.index("--learning_rate LEARNING_RATE")


def _real_parser(command):
    from transformers import HfArgumentParser
    from trl import ModelConfig, TrlParser

    from trl_latent.quickstart.config import QuickstartConfig

    if command == "quickstart":
        return HfArgumentParser(QuickstartConfig)
    return TrlParser({"dift": (LatentImageryScriptArguments, LatentImageryConfig, ModelConfig),
                      "grpo": (LatentGRPOScriptArguments, LatentGRPOConfig, ModelConfig)}[command])


# defaults transformers computes when it is imported (the optimizer depends on the torch version) or types it
# normalises; the help shows their source expression instead
COMPUTED_DEFAULTS = {"optim", "debug"}


@pytest.mark.parametrize("command", ["dift", "grpo", "quickstart"])
def test_help_read_from_source_lists_what_the_real_parser_parses(command):
    """Same flags, defaults, help texts and choices as the parser that parses the run (read with imports)."""
    from trl_latent.scripts.static_help import build_parser

    real = {o: a for a in _real_parser(command)._actions for o in a.option_strings if o not in ("-h", "--help")}
    static = {o: a for a in build_parser(command)._actions for o in a.option_strings if o not in ("-h", "--help")}
    assert sorted(real) == sorted(static)
    for option, action in real.items():
        twin = static[option]
        if action.dest not in COMPUTED_DEFAULTS:
            assert str(action.default) == str(twin.default), (option, action.default, twin.default)
        if twin.choices is not None:
            assert list(twin.choices) == list(action.choices or []), (option, twin.choices)
        if (action.help or "") != (twin.help or ""):
            assert not twin.help, (option, action.help, twin.help)  # unreadable help is left out, never wrong


def test_quickstart_help_read_from_source_keeps_its_f_string_help():
    """The help texts written as f-strings listing a module's names (the ablations, presets, model families) are read
    from source, not left out: until 2026-12-05 `trl-latent quickstart --help` showed `--ablations` without a word."""
    from trl_latent.quickstart.config import ABLATIONS, PRESETS, TEXT_ABLATIONS
    from trl_latent.scripts.static_help import build_parser

    shown = {a.option_strings[0]: a.help or "" for a in build_parser("quickstart")._actions}
    assert [option for option, text in shown.items() if not text.strip()] == []
    listed = f"Extra arms: DIFT {', '.join(ABLATIONS)}, text-only {', '.join(TEXT_ABLATIONS)} ("
    assert shown["--ablations"].startswith(listed)
    assert " or ".join(PRESETS) in shown["--preset"]
    # and through the door: the command a user types, its wrapped output read as one line
    printed = subprocess.run([TRL_LATENT, "quickstart", "--help"], capture_output=True, text=True, timeout=300)
    assert printed.returncode == 0, printed.stderr
    assert listed in " ".join(printed.stdout.split())


def test_init_tiny_sizes_are_the_model_sizes():
    from trl_latent import models
    from trl_latent.scripts.init_tiny import FAMILIES, SIZES
    from trl_latent.testing import model_sizes

    assert FAMILIES == models.FAMILIES
    assert set(SIZES) == {size for family in FAMILIES for size in model_sizes(family)}
