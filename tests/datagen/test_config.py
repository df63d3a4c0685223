"""The datagen config is typed and range-checked before any work, from YAML, from Python and from ``--set``."""

import dataclasses
import typing

import pytest
import yaml

from datagen import DatagenConfig
from datagen.cli import main
from datagen.config import LIMITS


def _build(**sections):
    return DatagenConfig.from_dict({"input_root": "in", "output_dir": "out", **sections}, "cfg.yaml")


@pytest.mark.parametrize("section, value, message", [
    ({"frames": {"max_frames": "16"}}, "16", r"cfg.yaml: frames.max_frames='16' \(str\): expected an integer"),
    ({"frames": {"max_frames": "many"}}, "many", r"frames.max_frames='many' \(str\): expected an integer"),
    ({"frames": {"max_frames": 2.5}}, 2.5, r"frames.max_frames=2.5 \(float\): expected an integer"),
    ({"object_qa": {"min_motion": [0.2]}}, [0.2], r"object_qa.min_motion=\[0.2\] \(list\): expected a number"),
    ({"object_qa": {"skip_occluded": "yes"}}, "yes", r"object_qa.skip_occluded='yes' \(str\): expected true or false"),
    ({"object_qa": {"min_motion": -0.1}}, -0.1, r"object_qa.min_motion=-0.1: expected a value >= 0"),
    ({"export": {"benchmark_fraction": 1.5}}, 1.5, r"export.benchmark_fraction=1.5: expected a value >= 0 and <= 1"),
    ({"frames": {"fps": 0}}, 0, r"frames.fps=0: expected a value > 0"),
    ({"frames": {"backend": "ffmpeg"}}, "ffmpeg", r"frames.backend='ffmpeg': expected one of \['auto', 'av', 'decord'\]"),
    ({"segment": {"backend": "sam9"}}, "sam9", r"segment.backend='sam9': expected one of \[.*'gt'.*\]"),
    ({"segment": {"vocabulary": "ball"}}, "ball", r"segment.vocabulary='ball' \(str\): expected a list of strings"),
    ({"stages": ["frames", "segmnt"]}, None, r"stages=\['frames', 'segmnt'\]: expected one of"),
    ({"limit": True}, True, r"limit=True \(bool\): expected an integer or null"),
    ({"cot": {"template_style": "short"}}, "short", r"cot.template_style='short': expected one of"),
    ({"imagery": {"min_mask_fraction": "1e-3"}}, "1e-3", r"YAML reads 1e-3 as a string: write 1.0e-3"),
    ({"frames": {"max_frames": " 16"}}, " 16", r"a quoted number is a string: drop the quotes"),
])
def test_wrong_types_and_ranges_name_key_value_and_expectation(section, value, message):
    with pytest.raises(ValueError, match=message):
        _build(**section)


def test_values_are_normalised_and_python_construction_is_checked_too():
    config = _build(object_qa={"min_motion": 1}, frames={"fps": 2})
    assert config.object_qa.min_motion == 1.0 and isinstance(config.frames.fps, float)
    from datagen.frames import FramesConfig

    with pytest.raises(ValueError, match="frames.max_frames='16'"):
        DatagenConfig("in", "out", frames=FramesConfig(max_frames="16"))
    with pytest.raises(ValueError, match="cfg.yaml: field 'frames' must be a mapping"):
        _build(frames=16)


def test_every_limit_names_a_field():
    hints = typing.get_type_hints(DatagenConfig)
    for key in LIMITS:
        *section, name = key.split(".")
        cls = hints[section[0]] if section else DatagenConfig
        assert name in {f.name for f in dataclasses.fields(cls)}, key


def test_resolved_config_round_trips():
    config = _build(object_qa={"min_motion": 0.3}, cot={"backend": "api", "model": "m"})
    assert DatagenConfig.from_dict(yaml.safe_load(config.to_yaml())) == config


@pytest.mark.parametrize("assignment, message", [
    ("object_qa.min_motion=abc", r"--set object_qa.min_motion=abc: object_qa.min_motion='abc' \(str\): expected a number"),
    ("object_qa.min_motion=[0.2]", r"object_qa.min_motion=\[0.2\] \(list\): expected a number"),
    ("frames.max_frames=many", r"frames.max_frames='many' \(str\): expected an integer"),
    ("object_qa.min_motoin=0.2", r"--set object_qa.min_motoin=0.2: unknown field 'min_motoin' for ObjectQAConfig"),
    ("objectqa.min_motion=0.2", r"'objectqa' is not a section of DatagenConfig"),
    ("object_qa.min_motion", r"expected section.field=value"),
    ("export.benchmark_fraction=2", r"export.benchmark_fraction=2: expected a value >= 0 and <= 1"),
])
def test_set_values_are_checked_like_the_config_file(tmp_path, assignment, message):
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match=message):
        main(["object-qa", "--input_root", str(tmp_path), "--output_dir", str(out), "--set", assignment])
    assert not out.exists()  # nothing ran


def test_set_applies_a_checked_value(tmp_path):
    from datagen.config import apply_override

    data = {}
    apply_override(data, "object_qa.min_motion=1")
    apply_override(data, "cot.base_url=null")
    assert data == {"object_qa": {"min_motion": 1.0}, "cot": {"base_url": None}}


def test_config_file_errors_name_the_file_and_flags_complete_it(tmp_path):
    cfg, out = tmp_path / "cfg.yaml", tmp_path / "out"
    cfg.write_text('frames:\n  max_frames: "16"\n')  # no input_root / output_dir: the flags give them
    with pytest.raises(SystemExit, match=rf"{cfg}: frames.max_frames='16' \(str\): expected an integer"):
        main(["frames", "--config", str(cfg), "--input_root", str(tmp_path), "--output_dir", str(out)])
    assert not out.exists()
