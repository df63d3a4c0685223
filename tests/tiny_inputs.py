"""Small image / video inputs for the tiny model, built in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def random_image(seed: int, size: int = 56) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))


def random_frames(seed: int, num_frames: int = 4, size: int = 56) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (num_frames, size, size, 3), dtype=np.uint8)


def image_prompts(processor, questions: list[str], seed: int = 0):
    """Left-padded chat prompts with one image each, as generation expects."""
    messages = [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}] for q in questions]
    texts = [processor.apply_chat_template(m, add_generation_prompt=True) for m in messages]
    images = [random_image(seed + i) for i in range(len(questions))]
    processor.tokenizer.padding_side = "left"
    return processor(text=texts, images=images, return_tensors="pt", padding=True)


def video_prompt(processor, question: str, seed: int = 0, fps: float = 1.0):
    frames = random_frames(seed)
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    return processor(
        text=[text], videos=[frames], return_tensors="pt",
        videos_kwargs={"video_metadata": [{"fps": fps, "total_num_frames": len(frames), "frames_indices": list(range(len(frames)))}]},
    )


def write_video(path: Path, num_frames: int = 8, fps: int = 4, size: int = 56, seed: int = 0) -> Path:
    """A tiny mp4 (mpeg4 codec, no system ffmpeg needed)."""
    import av

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for _ in range(num_frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path

def corrupt_middle(path: Path) -> Path:
    """Overwrite every coded frame of a PyAV-written mp4 with zeros, keeping its container header: the file opens and
    lists a video stream (so it passes load-time checks) but its frames cannot be decoded."""
    import av

    with av.open(str(path)) as container:
        packets = [(p.pos, p.size) for p in container.demux(container.streams.video[0]) if p.size]
    data = bytearray(path.read_bytes())
    start, end = packets[0][0], packets[-1][0] + packets[-1][1]
    data[start:end] = bytes(end - start)
    path.write_bytes(bytes(data))
    return path
