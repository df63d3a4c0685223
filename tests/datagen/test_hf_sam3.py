import numpy as np
import pytest
from PIL import Image

from datagen.segment import SegmentConfig, get_segmenter, segment_clip
from datagen.segment.base import link_detections, load_masks


def _tiny_sam3(path):
    """A 4M-parameter random Sam3 with a word-level tokenizer, saved like a real local checkpoint."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Sam3Config, Sam3ImageProcessor, Sam3Model, Sam3Processor

    small = dict(num_attention_heads=4, intermediate_size=128)
    config = Sam3Config(
        vision_config=dict(fpn_hidden_size=64, backbone_feature_sizes=[[64, 64], [32, 32], [16, 16]],
                           backbone_config=dict(model_type="sam3_vit_model", hidden_size=64, num_hidden_layers=2,
                                                image_size=224, patch_size=14, window_size=8, global_attn_indexes=[1],
                                                pretrain_image_size=224, **small)),
        text_config=dict(hidden_size=64, projection_dim=64, num_hidden_layers=2, **small),
        geometry_encoder_config=dict(hidden_size=64, num_layers=1, **small),
        detr_encoder_config=dict(hidden_size=64, num_layers=1, **small),
        detr_decoder_config=dict(hidden_size=64, num_layers=1, num_queries=20, **small),
        mask_decoder_config=dict(hidden_size=64, num_attention_heads=4),
    )
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "[UNK]": 2, "red": 3, "ball": 4}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|startoftext|>",
                                        eos_token="<|endoftext|>", pad_token="<|endoftext|>", unk_token="[UNK]")
    Sam3Model(config).save_pretrained(path)
    Sam3Processor(image_processor=Sam3ImageProcessor(size={"height": 224, "width": 224}),
                  tokenizer=tokenizer).save_pretrained(path)


def test_link_detections_follows_moving_object():
    def box(x):
        m = np.zeros((20, 20), bool)
        m[5:10, x : x + 5] = True
        return m

    per_frame = [[(box(0), 0.9), (box(14), 0.8)], [(box(1), 0.9)], [], [(box(2), 0.7), (box(14), 0.9)]]
    tracks = link_detections(per_frame, 0.3)
    assert sorted(tracks[0]) == [0, 1, 3] and tracks[0][3][5, 2]  # re-found after a missed frame
    assert sorted(tracks[1]) == [0, 3]


def test_tiny_hf_sam3_backend_segments_a_clip(tmp_path):
    pytest.importorskip("transformers")
    _tiny_sam3(tmp_path / "sam3")
    frames_dir = tmp_path / "frames"
    (frames_dir / "c").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (56, 84, 3), dtype=np.uint8)).save(frames_dir / "c" / f"{i}.jpg")
    clip = {"clip_id": "c", "files": ["0.jpg", "1.jpg", "2.jpg"], "width": 84, "height": 56}
    config = SegmentConfig(backend="hf-sam3", checkpoint=str(tmp_path / "sam3"), device="cpu", score_threshold=0.0,
                           mask_threshold=0.0)
    segment_clip(clip, frames_dir, tmp_path / "c.npz", get_segmenter(config), ["red ball"])
    masks, objects = load_masks(tmp_path / "c.npz")
    assert masks.shape == (3, 56, 84) and masks.dtype == np.uint8
    assert objects == [{"obj_id": 1, "name": "red ball"}]  # random weights still detect something at threshold 0
    assert set(np.unique(masks)) <= {0, 1} and (masks == 1).any()
    with pytest.raises(ValueError, match="checkpoint"):
        get_segmenter(SegmentConfig(backend="hf-sam3"))
