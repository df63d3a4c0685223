"""CoT from an OpenAI-compatible chat API, with retries, an on-disk response cache and a token/cost log.

* Transient failures (HTTP 429, 5xx, timeouts, dropped connections) are retried ``max_retries`` times with
  exponential backoff; other errors fail the item at once.
* A response that breaks the acceptance rules (:func:`check_cot`) is asked for again, at most ``max_attempts``
  times per question; each attempt is a distinct request (the attempt number is part of the prompt).
* Every response is cached under ``cache_dir/<sha256 of the request>.json``: a rerun replays the same answers
  without calling the API, so an interrupted run costs nothing twice.
* Every API call appends a line to the usage log (tokens, estimated cost, latency, outcome).
* Before the first question, :meth:`ChatCoT.probe` sends one tiny request: a wrong key, model or endpoint stops the
  stage with one clear error instead of failing every question. There is no default key: a local server that needs
  none still wants the variable set (any value, e.g. ``EMPTY``).
* The key never reaches a file, a log line or an error message: servers that echo the request's credentials in
  their errors are common, so every error text goes through :meth:`ChatCoT.redact` first.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..io import write_json
from .checks import OUTPUT_IMAGE, check_cot


@dataclass
class CotConfig:
    backend: str = "template"
    """``template`` (offline, from the geometric facts) or ``api`` (OpenAI-compatible chat completions)."""
    template_style: str = "full"
    """With ``backend: template``: ``full`` (measurements behind the label) or ``concise`` (imagery + conclusion)."""
    model: str = ""
    base_url: str | None = None
    """Defaults to ``$OPENAI_BASE_URL`` (then the OpenAI endpoint)."""
    api_key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable that holds the key (keys never go in config files)."""
    temperature: float = 0.7
    max_tokens: int = 1024
    concurrency: int = 4
    timeout: float = 60.0
    max_retries: int = 5
    backoff: float = 1.0
    """First retry waits this many seconds, then 2x, 4x, … (capped at ``max_backoff``)."""
    max_backoff: float = 30.0
    max_attempts: int = 5
    min_think_chars: int = 100
    send_images: bool = True
    """Send the clip frames and the highlighted key frames with the request (as data URLs)."""
    price_prompt_per_1k: float = 0.0
    price_completion_per_1k: float = 0.0


SYSTEM_PROMPT = (
    "You write the reasoning of a video spatial-reasoning tutor. You are given a multiple-choice question about a "
    "video, its correct answer and the measured geometry behind it. Write the reasoning a careful viewer would follow."
)


SECRET_PATTERNS = re.compile(r"(Bearer\s+)\S+|\bsk-[A-Za-z0-9_\-*.]{6,}")
"""Credentials in the usual shapes, redacted even when they are not the configured key."""


class CotAPIError(RuntimeError):
    """A request that failed for good (non-transient error, or retries exhausted); the message is redacted."""

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


def require_api_key(config: CotConfig) -> str:
    """The key from ``$<api_key_env>``; a clear error before any work when it is unset or empty."""
    if not config.model:
        raise ValueError("cot.backend='api' (or segment.prompts_from='api') needs cot.model")
    key = os.environ.get(config.api_key_env, "")
    if not key:
        raise ValueError(f"the chat API needs a key in ${config.api_key_env} (cot.api_key_env); it is not set. For a "
                         f"local server that takes any key, set it to any value, e.g. {config.api_key_env}=EMPTY")
    return key


def build_prompt(qa: dict, num_images: int, attempt: int) -> str:
    return (
        f"Question:\n{qa['question']}\n" + "\n".join(qa["options"]) + "\n\n"
        f"Correct answer: {qa['answer']} ({qa['answer_text']}).\n"
        f"Measured geometry (camera frame: x right, y down, z forward): {json.dumps(qa.get('facts', {}))}\n\n"
        f"Write the reasoning inside <think>...</think>, then only the letter inside <answer>...</answer>. In the "
        f"thinking, locate the time span, name the object to watch, then imagine its highlighted key frames by writing "
        f"exactly {num_images} {OUTPUT_IMAGE} tags together in one run, then analyse the motion and conclude in words. "
        f"Do not state the option letter inside <think>. At least 100 characters of thinking. (attempt {attempt + 1})"
    )


def _data_url(path: Path) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.open(path).convert("RGB").save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


class ChatCoT:
    """Writes one CoT per question through the chat API; thread-safe (one instance serves all workers)."""

    def __init__(self, config: CotConfig, cache_dir: Path, usage_log: Path):
        try:
            import openai
        except ImportError as e:
            raise ImportError("cot.backend='api' needs the openai package: pip install 'trl-latent[datagen]'") from e
        key = require_api_key(config)
        self.secrets = [key] if len(key) >= 4 else []  # replacing a 1-3 character key would garble every message
        self.openai = openai
        self.config = config
        self.client = openai.OpenAI(
            api_key=key,
            base_url=config.base_url or os.environ.get("OPENAI_BASE_URL"),
            timeout=config.timeout,
            max_retries=0,  # retries are ours: counted, logged, with our backoff
        )
        self.cache_dir = Path(cache_dir)
        self.usage_log = Path(usage_log)
        self._lock = threading.Lock()

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return SECRET_PATTERNS.sub(lambda m: f"{m.group(1) or ''}***", text)

    def _log(self, entry: dict) -> None:
        with self._lock:
            self.usage_log.parent.mkdir(parents=True, exist_ok=True)
            with self.usage_log.open("a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")

    def _transient(self, error: Exception) -> bool:
        o = self.openai
        if isinstance(error, (o.APITimeoutError, o.APIConnectionError, o.RateLimitError)):
            return True
        return isinstance(error, o.APIStatusError) and error.status_code >= 500

    def complete(self, messages: list[dict], tag: str) -> str:
        """One chat completion (cached; transient errors retried); ``tag`` labels the usage-log lines."""
        request = {"model": self.config.model, "messages": messages, "temperature": self.config.temperature,
                   "max_tokens": self.config.max_tokens}
        key = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
        cached = self.cache_dir / f"{key}.json"
        if cached.exists():
            self._log({"time": time.time(), "item": tag, "status": "cache_hit"})
            return json.loads(cached.read_text(encoding="utf-8"))["content"]
        content = self._request(request, tag)
        write_json(cached, {"request_sha256": key, "content": content})
        return content

    def probe(self) -> None:
        """One 1-token request (never cached): raises a :class:`CotAPIError` naming the endpoint and model when the
        key, the model or the endpoint is wrong, before any question is sent."""
        request = {"model": self.config.model, "messages": [{"role": "user", "content": "Reply with OK."}],
                   "max_tokens": 1}
        try:
            self._request(request, "probe")
        except CotAPIError as e:
            endpoint = self.client.base_url
            raise CotAPIError(f"the chat API at {endpoint} (model {self.config.model!r}) failed a probe request, so no "
                              f"question was sent: {e}", e.status_code) from None

    def _request(self, request: dict, tag: str) -> str:
        """Send ``request``, retrying transient errors; every attempt is logged, errors redacted."""
        for retry in range(self.config.max_retries + 1):
            start = time.monotonic()
            try:
                response = self.client.chat.completions.create(**request)
            except Exception as e:  # noqa: BLE001 - classified right below
                transient = self._transient(e)
                message = self.redact(f"{type(e).__name__}: {e}")
                self._log({"time": time.time(), "item": tag, "status": "retry" if transient else "error",
                           "error": message[:300], "latency_s": round(time.monotonic() - start, 3)})
                if not transient or retry == self.config.max_retries:
                    raise CotAPIError(message, getattr(e, "status_code", None)) from None  # no chained raw text
                time.sleep(min(self.config.max_backoff, self.config.backoff * 2**retry))
                continue
            content = response.choices[0].message.content or ""
            usage = response.usage
            prompt_tokens = getattr(usage, "prompt_tokens", 0) or 0
            completion_tokens = getattr(usage, "completion_tokens", 0) or 0
            cost = (prompt_tokens * self.config.price_prompt_per_1k
                    + completion_tokens * self.config.price_completion_per_1k) / 1000
            self._log({"time": time.time(), "item": tag, "status": "ok", "prompt_tokens": prompt_tokens,
                       "completion_tokens": completion_tokens, "cost": round(cost, 6),
                       "latency_s": round(time.monotonic() - start, 3)})
            return content
        raise AssertionError("unreachable")

    def messages(self, qa: dict, image_paths: list[Path], frame_paths: list[Path], attempt: int) -> list[dict]:
        text = {"type": "text", "text": build_prompt(qa, len(image_paths), attempt)}
        content = [text]
        if self.config.send_images:
            content = ([{"type": "text", "text": "Video frames:"}]
                       + [{"type": "image_url", "image_url": {"url": _data_url(p)}} for p in frame_paths]
                       + [{"type": "text", "text": "Highlighted key frames:"}]
                       + [{"type": "image_url", "image_url": {"url": _data_url(p)}} for p in image_paths] + [text])
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}]

    def generate(self, qa: dict, image_paths: list[Path], frame_paths: list[Path]) -> tuple[str, int]:
        """An accepted CoT and the number of attempts it took; raises after ``max_attempts`` rejected responses."""
        problems: list[str] = []
        for attempt in range(self.config.max_attempts):
            text = self.complete(self.messages(qa, image_paths, frame_paths, attempt), f"{qa['qa_id']}#{attempt}")
            problems = check_cot(text, len(image_paths), qa["answer"], self.config.min_think_chars)
            if not problems:
                return text.strip(), attempt + 1
        raise ValueError(f"{qa['qa_id']}: no acceptable CoT in {self.config.max_attempts} attempts (last: {problems})")
