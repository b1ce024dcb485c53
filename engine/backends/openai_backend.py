"""Backend over an OpenAI-compatible HTTP server (vLLM, SGLang, hosted APIs): many requests in flight, each retried.

Generation goes through `/chat/completions`. Option scoring renders the prompt locally with the model's
own chat template (the folder the server loaded) and asks `/completions` for the full-vocabulary
logprob of each option token by id (vLLM's `logprob_token_ids`), so scores equal the in-process vLLM
backend's. `scoring: chat` is for chat-only APIs: top-20 logprobs of the reply's first token.
The API key is read from the environment and sent only as a header; it is scrubbed from every error.
"""

from __future__ import annotations

import math
import os
import random
import re
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

import httpx
from tqdm.auto import tqdm
from transformers import AutoTokenizer

from engine.backends import (
    CONTEXT_OVERFLOW, UNAVAILABLE, Completion, GenerationRequest, Message, OptionScores, ScoreRequest, context_overflow,
    overflowed,
)
from engine.backends.chat import check_model_dir, render_chat, render_scoring_prompt, single_token_ids, too_long
from engine.errors import CharterError

TOP_LOGPROBS = 20  # the most OpenAI's API returns, and vLLM's default --max-logprobs
MAX_RETRY_AFTER_S = 60.0  # a longer Retry-After is cut to this, so one busy server cannot stall a run for hours
MAX_ERROR_CHARS = 500
# How servers word a request longer than the context (vLLM: "maximum context length is 2048 tokens";
# OpenAI: "context_length_exceeded"); such a 400 is stored as that row's context_overflow.
CONTEXT_WORDS = re.compile(r"context.length|maximum context|max_model_len|too many tokens|prompt is too long", re.IGNORECASE)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class OpenAIOptions:
    """`backend_options` of `backend: openai`."""

    base_url: str = ""  # the API root, e.g. http://127.0.0.1:8000/v1
    model: str | None = None  # served model name; None: the first one `GET /models` lists
    api_key_env: str | None = None  # NAME of the environment variable holding the key (never the key itself)
    max_concurrency: int = 8  # requests in flight at once
    timeout_s: float = 60.0
    max_retries: int = 4  # on 429, 5xx, timeouts and lost connections
    backoff_s: float = 0.5  # first wait between tries; doubled each retry, with jitter
    scoring: str = "completions"  # completions: exact option logprobs by token id (vLLM); chat: chat-only APIs

    def __post_init__(self) -> None:
        if not self.base_url:
            raise ValueError("base_url is required: the server's API root, e.g. 'http://127.0.0.1:8000/v1'")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url: {self.base_url!r} is not an http(s) URL, e.g. 'http://127.0.0.1:8000/v1'")
        if self.max_concurrency < 1 or self.max_retries < 0:
            raise ValueError("max_concurrency must be >= 1 and max_retries >= 0")
        if self.timeout_s <= 0 or self.backoff_s < 0:
            raise ValueError("timeout_s must be > 0 and backoff_s >= 0")
        if self.scoring not in ("completions", "chat"):
            raise ValueError(f"scoring: {self.scoring!r} is not one of completions, chat")


class _CallFailed(Exception):
    """One API call failed for good: retries spent, or a request the server rejects."""


class OpenAIBackend:
    name = "openai"
    Options = OpenAIOptions

    def __init__(self, model_path: str, options: OpenAIOptions, seed: int = 0):
        # `seed` is unused: every request carries its own seed to the server.
        self.options = options
        self.tokenizer = AutoTokenizer.from_pretrained(check_model_dir(model_path))
        self._key = _api_key(options.api_key_env)
        self.client = httpx.Client(
            base_url=options.base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {self._key}"} if self._key else {},
            timeout=options.timeout_s,
            limits=httpx.Limits(max_connections=options.max_concurrency),
        )
        self.model, self.max_model_len = self._served_model(options.model)
        url = self.client.base_url
        self.model_id = f"openai:{self.model}@{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.model_id!r})"

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """Requests that fit the served context (counted with the local tokenizer) are sent; the rest get
        a context_overflow error without a call. A server that still finds one too long says so per row."""
        results: list[Completion | None] = [None] * len(requests)
        if self.max_model_len:
            for i, r in enumerate(requests):
                n = len(render_chat(self.tokenizer, r.messages))
                if problem := context_overflow(n, r.sampling.max_tokens, self.max_model_len):
                    results[i] = overflowed(n, problem)
        todo = [i for i, r in enumerate(results) if r is None]
        for i, completion in zip(todo, self._each([requests[i] for i in todo], self._complete, _failed_completion, "generate")):
            results[i] = completion
        return results  # type: ignore[return-value]

    def option_token_ids(self, options: Sequence[str]) -> list[int]:
        return single_token_ids(self.tokenizer, options)

    def score_options(self, requests: Sequence[ScoreRequest]) -> list[OptionScores]:
        """One 1-token request per row; a row the server cannot score gets an error, the batch goes on."""
        if self.options.scoring == "chat":
            return self._each(list(requests), self._score_by_chat, _failed_scores, "score")
        # Tokenize here, not in the worker threads: a fast tokenizer is not safe to share across threads.
        prompts = [render_scoring_prompt(self.tokenizer, r.messages, r.assistant_prefix) for r in requests]
        rows = [(prompt, self.option_token_ids(r.options), r.options) for prompt, r in zip(prompts, requests)]
        return self._each(rows, self._score_by_token_ids, _failed_scores, "score")

    def close(self) -> None:
        self.client.close()

    def _complete(self, r: GenerationRequest) -> Completion:
        s = r.sampling
        body = {
            "model": self.model,
            "messages": list(r.messages),
            "temperature": s.temperature,
            "top_p": s.top_p if s.temperature > 0 else 1.0,  # as the vLLM backend: greedy ignores top_p
            "max_tokens": s.max_tokens,
            "seed": r.seed,
        }
        reply = self._call("POST", "/chat/completions", body)
        choice, usage = reply["choices"][0], reply.get("usage") or {}
        return Completion(
            text=(choice["message"].get("content") or "").strip(),
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )

    def _score_by_token_ids(self, row: tuple[list[int], list[int], tuple[str, ...]]) -> OptionScores:
        """The prompt as token ids, one generated token, and the logprobs of exactly the option ids."""
        prompt, option_ids, labels = row
        if self.max_model_len and (problem := too_long(len(prompt), self.max_model_len)):
            return OptionScores(None, problem)
        body = {
            "model": self.model,
            "prompt": prompt,
            "max_tokens": 1,
            "temperature": 0.0,
            # vLLM returns the full-vocabulary logprob of each id in `logprob_token_ids` (keys "token_id:N");
            # a server without that field ignores it and returns the top 20, where an option may be missing.
            "logprobs": TOP_LOGPROBS,
            "logprob_token_ids": option_ids,
            "return_tokens_as_token_ids": True,
        }
        step = self._call("POST", "/completions", body)["choices"][0]["logprobs"]["top_logprobs"][0]
        missing = [label for label, t in zip(labels, option_ids) if f"token_id:{t}" not in step]
        if missing:
            return OptionScores(None, f"the server returned no logprob for option(s) {missing}")
        return OptionScores(tuple(float(step[f"token_id:{t}"]) for t in option_ids))

    def _score_by_chat(self, r: ScoreRequest) -> OptionScores:
        """Top-20 logprobs of the reply's first token; an option counts with or without a leading space."""
        body = {
            "model": self.model,
            "messages": _chat_scoring_messages(r),
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": True,
            "top_logprobs": TOP_LOGPROBS,
        }
        reply = self._call("POST", "/chat/completions", body)
        top = reply["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        scores, missing = [], []
        for label in r.options:
            spellings = {label.lstrip(), " " + label.lstrip()}
            found = [float(t["logprob"]) for t in top if t["token"] in spellings]
            # Both spellings are the same answer; their probabilities add.
            scores.append(math.log(sum(math.exp(lp) for lp in found)) if found else None)
            if not found:
                missing.append(label)
        if missing:
            return OptionScores(None, f"option(s) {missing} not among the top {TOP_LOGPROBS} first tokens of the reply")
        return OptionScores(tuple(scores))

    def _each(self, items: list[T], work: Callable[[T], R], failed: Callable[[str], R], desc: str) -> list[R]:
        """`work` on every item, `max_concurrency` at a time, results in input order; a failed item gets `failed(why)`."""

        def run(item: T) -> R:
            try:
                return work(item)
            except _CallFailed as exc:
                return failed(self._scrub(str(exc)))
            except (ValueError, KeyError, IndexError, TypeError) as exc:  # a reply not shaped as the API says
                return failed(self._scrub(f"unexpected reply from the server: {type(exc).__name__}: {exc}"))

        results: list[Any] = [None] * len(items)
        with ThreadPoolExecutor(self.options.max_concurrency) as pool:
            futures = {pool.submit(run, item): i for i, item in enumerate(items)}
            progress = tqdm(as_completed(futures), total=len(items), desc=desc, unit="request", leave=False, disable=len(items) < 2)
            for future in progress:
                results[futures[future]] = future.result()
        return results

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        """One API call, retried on 429, 5xx, timeouts and lost connections; _CallFailed once retries run out."""
        attempts, where = self.options.max_retries + 1, f"{method} {self.client.base_url.path.rstrip('/')}{path}"
        for attempt in range(attempts):
            wait = None
            try:
                response = self.client.request(method, path, json=body)
            except httpx.TransportError as exc:  # connection refused or dropped, timeouts
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    return response.json()
                problem = f"HTTP {response.status_code}: {_server_message(response)}"
                if response.status_code != 429 and response.status_code < 500:  # our request is wrong; retrying won't help
                    prefix = CONTEXT_OVERFLOW if CONTEXT_WORDS.search(problem) else ""
                    raise _CallFailed(f"{prefix}{where}: {problem}")
                wait = _retry_after(response)
            if attempt + 1 < attempts:
                time.sleep(wait if wait is not None else self.options.backoff_s * 2**attempt * random.uniform(1.0, 1.5))
        # marked UNAVAILABLE: the server may answer later, so stages leave the row to do rather than store it
        raise _CallFailed(f"{UNAVAILABLE}{where}: gave up after {attempts} attempts; last: {problem}")

    def _served_model(self, wanted: str | None) -> tuple[str, int | None]:
        """The model name to send and its context length, from `GET /models` (only vLLM reports the length)."""
        try:
            listed = [m for m in self._call("GET", "/models")["data"] if isinstance(m, dict) and "id" in m]
        except (_CallFailed, ValueError, KeyError, TypeError) as exc:
            if wanted:
                return wanted, None  # not every API lists models; the name is all generation needs
            why = self._scrub(str(exc))
            raise CharterError(f"backend openai: cannot learn the served model ({why}); set backend_options.model") from None
        entry = next((m for m in listed if m.get("id") == wanted), None) if wanted else next(iter(listed), None)
        if entry is None and not wanted:
            raise CharterError(f"backend openai: {self.client.base_url}/models lists no model; set backend_options.model")
        limit = (entry or {}).get("max_model_len")
        return wanted or str(entry["id"]), limit if isinstance(limit, int) else None

    def _scrub(self, text: str) -> str:
        """An error message safe to show and store: the key removed (a server may echo headers), length capped."""
        if self._key:
            text = text.replace(self._key, "[api key]")
        return text[:MAX_ERROR_CHARS]


def _api_key(env_name: str | None) -> str | None:
    if env_name is None:
        return None
    key = os.environ.get(env_name, "").strip()  # a stray newline would make the header invalid
    if not key:
        raise CharterError(f"backend_options.api_key_env: environment variable {env_name} is not set (or is empty)")
    return key


def _chat_scoring_messages(r: ScoreRequest) -> list[Message]:
    """Chat-only APIs cannot continue a partial assistant turn, so the prefix is shown as the assistant's words
    so far and a last user turn asks for the label alone: the reply's first token is then the option."""
    labels = " or ".join(label.strip() for label in r.options)
    said = [{"role": "assistant", "content": r.assistant_prefix}] if r.assistant_prefix.strip() else []
    return [*r.messages, *said, {"role": "user", "content": f"Answer with only {labels}."}]


def _server_message(response: httpx.Response) -> str:
    """The error text of an OpenAI-style `{"error": {"message": ...}}` body, else the raw body, on one line."""
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text
    return " ".join(str(message).split())


def _retry_after(response: httpx.Response) -> float | None:
    """The server's Retry-After in seconds, capped; None when absent or an HTTP date (our backoff applies)."""
    try:
        return min(max(float(response.headers["retry-after"]), 0.0), MAX_RETRY_AFTER_S)
    except (KeyError, ValueError):
        return None


def _failed_completion(why: str) -> Completion:
    return Completion(text="", finish_reason="error", prompt_tokens=0, completion_tokens=0, error=why)


def _failed_scores(why: str) -> OptionScores:
    return OptionScores(None, why)
