"""``trl-latent dift``: Dynamic-Imagery Fine-Tuning from a recipe, like ``trl sft`` for latent imagery.

    trl-latent dift --config examples/dift_qwen2_5_vl_3b.yaml
    accelerate launch --config_file examples/accelerate/zero2.yaml -m trl_latent.scripts.dift --config …

``dataset_name`` is a DIFT data file (JSONL with ``image_input`` / ``video``, ``text_input``, ``image_output``,
``text_output``; paths relative to the file) or a ``datasets`` folder / parquet / json file with the same columns. It
is validated up front by :func:`trl_latent.data.load_records`. Every ``LatentImageryConfig`` (so every ``SFTConfig``)
and ``ModelConfig`` field works from the YAML or as a flag; the model is a local path (or a hub id when online).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from trl import ScriptArguments, get_peft_config, get_quantization_config

from ..data import load_records
from ..dift import LatentImageryConfig, LatentImageryTrainer
from ._common import parse_recipe, train_and_save


@dataclass
class LatentImageryScriptArguments(ScriptArguments):
    """``ScriptArguments`` where ``dataset_name`` is the DIFT data file, plus an optional evaluation file."""

    eval_dataset_name: str | None = field(
        default=None,
        metadata={"help": "DIFT data evaluated every `eval_steps` (same formats as `dataset_name`; the split of a "
                          "datasets folder is `dataset_test_split`)."},
    )
    check_media: bool = field(
        default=True, metadata={"help": "Open every image/video header at load time so unreadable files fail early."}
    )


def main(argv: list[str] | None = None) -> int:
    script_args, training_args, model_args = parse_recipe(
        LatentImageryScriptArguments, LatentImageryConfig, argv, command="dift",
        dataset_help="the DIFT data file", model_help="a local Qwen2.5-VL checkpoint",
    )
    quantization = get_quantization_config(model_args)
    if quantization is not None:
        training_args.model_init_kwargs["quantization_config"] = quantization

    def load(path: str, split: str):
        return load_records(path, "dift", skip_invalid=training_args.skip_invalid_samples,
                            check_media=script_args.check_media, split=split, config=script_args.dataset_config,
                            prompt_suffix=training_args.prompt_suffix)

    trainer = LatentImageryTrainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=load(script_args.dataset_name, script_args.dataset_train_split),
        eval_dataset=(load(script_args.eval_dataset_name, script_args.dataset_test_split)
                      if script_args.eval_dataset_name else None),
        peft_config=get_peft_config(model_args),
    )
    train_and_save(trainer, training_args, "DIFT", script_args.dataset_name)
    return 0


if __name__ == "__main__":
    from ..cli import run

    sys.exit(run(main, sys.argv[1:], "trl-latent dift"))
