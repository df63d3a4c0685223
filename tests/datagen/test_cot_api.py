import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from datagen.cot import ChatCoT, CotConfig, check_cot
from datagen.cot.api import CotAPIError
from datagen.io import read_jsonl


GOOD = ("<think>The span runs from 0s to 3.5s, and I watch the red ball against the still box. Picturing it: "
        "<output_image> <output_image> and it drifts steadily to the right of the frame.</think><answer>B</answer>")
BAD = "<think>too short <output_image></think><answer>B</answer>"
QA = {"qa_id": "clip-obj-000", "question": "Where does the ball go?", "options": ["A. Left", "B. Right", "C. Up",
      "D. Down"], "answer": "B", "answer_text": "Right", "facts": {"label": "right"}}


KEY = "sk-test-0123456789abcdef"


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


class FakeServer:
    """OpenAI-compatible /chat/completions that plays a script: HTTP errors (``echo``: one that quotes the request's
    Authorization header, as some proxies do), stalls, then contents."""

    def __init__(self, script, responder=None):
        self.script, self.requests, self.responder = list(script), 0, responder
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests += 1
                if server.script:
                    step = server.script.pop(0)
                else:
                    step = ("content", server.responder(body) if server.responder else GOOD)
                if step[0] == "sleep":
                    time.sleep(step[1])
                    step = ("content", GOOD)
                if step[0] in ("status", "echo"):
                    message = f"rejected {self.headers['Authorization']}" if step[0] == "echo" else "busy"
                    body = json.dumps({"error": {"message": message, "type": "server_error"}}).encode()
                    self.send_response(step[1])
                else:
                    body = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "fake",
                                       "choices": [{"index": 0, "finish_reason": "stop",
                                                    "message": {"role": "assistant", "content": step[1]}}],
                                       "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}}).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"


def _chat(server, tmp_path, **kw):
    config = CotConfig(backend="api", model="fake", base_url=server.url, timeout=0.5, backoff=0.01, send_images=False,
                       price_prompt_per_1k=1.0, price_completion_per_1k=2.0, **kw)
    return ChatCoT(config, tmp_path / "cache", tmp_path / "usage.jsonl")


def test_retries_errors_429_and_timeouts_then_caches(tmp_path):
    script = [("status", 500), ("status", 429), ("sleep", 1.5), ("content", BAD), ("content", GOOD)]
    with FakeServer(script) as server:
        text, attempts = _chat(server, tmp_path).generate(QA, ["a.jpg", "b.jpg"], [])
        assert text == GOOD and attempts == 2  # BAD was rejected, the second attempt accepted
        assert server.requests == 5
        log = read_jsonl(tmp_path / "usage.jsonl")
        assert [e["status"] for e in log] == ["retry", "retry", "retry", "ok", "ok"]
        assert log[-1]["cost"] == pytest.approx(0.2)  # 100 * 1/1k + 50 * 2/1k
        again, _ = _chat(server, tmp_path).generate(QA, ["a.jpg", "b.jpg"], [])
        assert again == GOOD and server.requests == 5  # both attempts replayed from the cache


def test_attempts_and_retries_are_bounded(tmp_path):
    with FakeServer([("content", BAD)] * 3) as server:
        with pytest.raises(ValueError, match="no acceptable CoT in 3 attempts"):
            _chat(server, tmp_path, max_attempts=3).generate(QA, ["a.jpg", "b.jpg"], [])
        assert server.requests == 3
    with FakeServer([("status", 503)] * 10) as server:
        with pytest.raises(CotAPIError, match="InternalServerError") as error:
            _chat(server, tmp_path / "2", max_retries=2).generate(QA, ["a.jpg"], [])
        assert server.requests == 3 and error.value.status_code == 503
    with FakeServer([("status", 400)]) as server:  # not transient: no retry
        with pytest.raises(CotAPIError, match="BadRequestError"):
            _chat(server, tmp_path / "3").generate(QA, ["a.jpg"], [])
        assert server.requests == 1


def test_check_cot_rules():
    assert check_cot(GOOD, 2, "B") == []
    assert check_cot(GOOD, 3, "B") == ["placeholder_count"]
    assert check_cot(GOOD, 2, "C") == ["answer_mismatch"]
    assert check_cot(BAD, 1, "B") == ["think_length"]
    assert check_cot("<answer>B</answer><think>" + "x" * 120 + "</think>", 0) == ["format"]
    leak = GOOD.replace("right of the frame", "right, so the answer is B")
    assert check_cot(leak, 2, "B") == ["answer_in_think"]
    spread = GOOD.replace("<output_image> <output_image>", "<output_image>" + " filler" * 60 + " <output_image>")
    assert check_cot(spread, 2, "B") == ["placeholder_grouping"]


def _pipeline_config(dataset, out, url, **overrides):
    from datagen import DatagenConfig

    data = {"input_root": str(dataset), "output_dir": str(out), "progress": False, "limit": 1, "frames": {"fps": 2.0},
            "cot": {"backend": "api", "model": "fake", "base_url": url, "concurrency": 2, "send_images": True,
                    "backoff": 0.01, "max_retries": 1}}
    data.update(overrides)
    return DatagenConfig.from_dict(data)


def answer_from_prompt(body):
    """A well-formed CoT for whatever the request asks: N tags and the correct letter, read from the prompt."""
    if body["messages"][-1]["content"] == "Reply with OK.":  # the probe
        return "OK"
    content = body["messages"][-1]["content"]
    assert any(part["type"] == "image_url" for part in content)  # frames and key frames are sent
    prompt = content[-1]["text"]
    letter = re.search(r"Correct answer: ([A-D])", prompt).group(1)
    n = int(re.search(r"exactly (\d+) <output_image>", prompt).group(1))
    return GOOD.replace("<output_image> <output_image>", " ".join(["<output_image>"] * n)).replace(
        "<answer>B", f"<answer>{letter}")


def test_pipeline_cot_stage_against_fake_server(dataset, tmp_path):
    from datagen import run_pipeline

    with FakeServer([("status", 429)], answer_from_prompt) as server:
        paths = run_pipeline(_pipeline_config(dataset, tmp_path / "out", server.url))
        first = server.requests
    manifest = read_jsonl(tmp_path / "out/manifests/cot.jsonl")
    assert all(e["status"] == "done" for e in manifest) and first == len(manifest) + 2  # + the probe and its 429
    dift = read_jsonl(paths["dift"])
    assert len(dift) == len(manifest) and all("drifts steadily" in r["text_output"] for r in dift)
    with FakeServer([], answer_from_prompt) as server:
        run_pipeline(_pipeline_config(dataset, tmp_path / "out", server.url))
        assert server.requests == 0  # a rerun calls nothing, not even the probe


def test_api_stage_refuses_to_start_without_a_key(dataset, tmp_path, monkeypatch, capsys):
    from datagen import run_pipeline
    from datagen.cli import main

    monkeypatch.delenv("OPENAI_API_KEY")
    with FakeServer([]) as server:
        config = _pipeline_config(dataset, tmp_path / "out", server.url)
        with pytest.raises(ValueError, match=r"needs a key in \$OPENAI_API_KEY"):
            run_pipeline(config)
        cfg = tmp_path / "cfg.yaml"
        cfg.write_text(config.to_yaml())
        with pytest.raises(SystemExit, match="OPENAI_API_KEY=EMPTY"):
            main(["run", "--config", str(cfg)])
        assert server.requests == 0
    assert not (tmp_path / "out").exists()  # refused before the first stage


def test_api_stage_refuses_an_unreachable_endpoint_with_one_probe(dataset, tmp_path):
    import socket

    from datagen import run_pipeline

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = _pipeline_config(dataset, tmp_path / "out", f"http://127.0.0.1:{port}/v1", limit=None)
    with pytest.raises(CotAPIError, match=rf"127.0.0.1:{port}.*model 'fake'.*failed a probe request.*Connection"):
        run_pipeline(config)
    assert not (tmp_path / "out/manifests/cot.jsonl").exists()  # no question was tried
    log = read_jsonl(tmp_path / "out/cot_usage.jsonl")
    assert {e["item"] for e in log} == {"probe"} and len(log) == 2  # max_retries=1: one probe, retried once


def _every_byte_written(root):
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_secrets_echoed_by_the_server_are_redacted_everywhere(dataset, tmp_path, caplog, capsys):
    from datagen.cli import main

    cfg = tmp_path / "cfg.yaml"
    # the probe passes, one retryable error, then every question fails with an error quoting the Authorization header
    with FakeServer([("content", "OK"), ("echo", 500)] + [("echo", 400)] * 200) as server:
        cfg.write_text(_pipeline_config(dataset, tmp_path / "out", server.url).to_yaml())
        assert main(["-v", "run", "--config", str(cfg)]) == 1
    out = capsys.readouterr()
    manifest = read_jsonl(tmp_path / "out/manifests/cot.jsonl")
    assert manifest and all(e["status"] == "failed" and "rejected Bearer ***" in e["error"] for e in manifest)
    assert any("rejected Bearer ***" in e.get("error", "") for e in read_jsonl(tmp_path / "out/cot_usage.jsonl"))
    assert "rejected Bearer ***" in out.err
    for text in (_every_byte_written(tmp_path / "out"), out.out.encode(), out.err.encode(), caplog.text.encode()):
        assert KEY.encode() not in text and KEY[3:].encode() not in text

    with FakeServer([("echo", 401)]) as server:  # a key the server refuses: the probe error is redacted too
        cfg.write_text(_pipeline_config(dataset, tmp_path / "out2", server.url).to_yaml())
        with pytest.raises(SystemExit, match=r"failed a probe request.*rejected Bearer \*\*\*") as error:
            main(["run", "--config", str(cfg)])
        assert server.requests == 1
    assert KEY not in str(error.value) and KEY.encode() not in _every_byte_written(tmp_path / "out2")


def test_no_api_calls_for_held_out_clips(dataset, tmp_path):
    from datagen import run_pipeline
    from datagen.export import is_held_out

    held_out = {c for c in ("forward", "pan", "truck") if is_held_out(c, 0.5)}
    assert held_out == {"pan", "truck"}
    with FakeServer([], answer_from_prompt) as server:
        config = _pipeline_config(dataset, tmp_path / "out", server.url, limit=None,
                                  export={"benchmark_fraction": 0.5})
        paths = run_pipeline(config)
    asked = {e["item"].rsplit("#", 1)[0] for e in read_jsonl(tmp_path / "out/cot_usage.jsonl")} - {"probe"}
    assert asked and all(qa_id.startswith("forward-") for qa_id in asked)
    assert server.requests == 1 + len(asked)  # the probe, then one accepted attempt per question
    assert len(read_jsonl(paths["dift"])) == len(asked) and paths["benchmark"].exists()
