import av
import numpy as np
import pytest

from datagen.synthetic.video import encode_mp4, rgb_to_yuv420p


def _frames() -> np.ndarray:
    rng = np.random.default_rng(0)
    blocks = (rng.random((5, 6, 5, 3)) * 255).astype(np.uint8)
    return np.repeat(np.repeat(blocks, 8, axis=1), 8, axis=2)[:, :, :38]  # 48 x 38: width not a multiple of 16


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
def test_encode_decodes_to_the_frames_and_is_reproducible(tmp_path, codec):
    frames = _frames()
    first, second = tmp_path / "a.mp4", tmp_path / "b.mp4"
    encode_mp4(frames, first, fps=2.5, codec=codec)
    encode_mp4(frames, second, fps=2.5, codec=codec)
    assert first.read_bytes() == second.read_bytes()
    with av.open(str(first)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.pix_fmt == "yuv420p" and float(stream.average_rate) == 2.5
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(float) - frames).mean() < 12.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "b.mp4"]  # no temporary files left


def test_yuv_conversion_of_grey_and_primaries():
    pixels = np.array([[[0, 0, 0], [255, 255, 255]], [[255, 0, 0], [0, 0, 255]]], dtype=np.uint8)
    y, u, v = rgb_to_yuv420p(pixels)
    assert y.tolist() == [[16, 235], [81, 41]]  # BT.601 limited range
    assert u.shape == v.shape == (1, 1)


def test_bad_frames_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        encode_mp4(np.zeros((2, 16, 16, 3), np.float32), tmp_path / "x.mp4", 4.0)
    with pytest.raises(ValueError, match="even"):
        encode_mp4(np.zeros((2, 15, 16, 3), np.uint8), tmp_path / "x.mp4", 4.0)
    assert not list(tmp_path.iterdir())
