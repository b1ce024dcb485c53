"""`charter constitution preview`: what one principle's critique and revision do to a few responses.

Before paying for a run, an editor of the constitution wants to read what a principle makes the model
write. The preview takes a few responses (from a run directory, or generated from a prompts file),
asks for the principle's critique and then its revision exactly as the critique stage does (one round),
and, with `--against OLD`, does the same under the old version of that principle, so the two can be read
side by side. Decoding is greedy and seeded, so two previews of the same files print the same text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from engine.backends import Backend, GenerationRequest, Sampling
from engine.config import PromptSource
from engine.constitution import Constitution, Principle
from engine.conversation import messages_for
from engine.errors import CharterError
from engine.stages import usable
from engine.stages.prompts import load_prompts
from engine.store import RunStore

GREEDY = Sampling(temperature=0.0, top_p=1.0, max_tokens=128)


@dataclass(frozen=True)
class PreviewRow:
    prompt: str
    response: str
    critique: str
    revision: str


def principle(constitution: Constitution, principle_id: str) -> Principle:
    by_id = {p.id: p for p in constitution.principles}
    if principle_id not in by_id:
        raise CharterError(f"{constitution.path}: no principle {principle_id!r}; it has {', '.join(constitution.ids)}")
    return by_id[principle_id]


def responses_from_run(run_dir: str | Path, n: int, seed: int) -> pl.DataFrame:
    """A seeded sample of n stored responses (prompt, response) from a run directory."""
    responses = usable(RunStore(run_dir, writer=False).read("responses"))
    if responses.height == 0:
        raise CharterError(f"{run_dir}: the run has no responses to preview")
    return responses.sample(min(n, responses.height), seed=seed).select("prompt", "response")


def responses_from_prompts(path: str | Path, n: int, backend: Backend, sampling: Sampling, seed: int) -> pl.DataFrame:
    """The first n prompts of a prompts file (JSONL/CSV/Parquet with a `prompt` column), answered greedily."""
    prompts = load_prompts(PromptSource(path=str(path), limit=n))["prompt"].to_list()
    answers = backend.generate([GenerationRequest(messages_for(p), sampling, seed) for p in prompts])
    return pl.DataFrame({"prompt": prompts, "response": [a.text for a in answers]}, schema={"prompt": pl.String, "response": pl.String})


def critique_and_revise(items: pl.DataFrame, rule: Principle, backend: Backend, sampling: Sampling, seed: int) -> list[PreviewRow]:
    """One critique -> revision round of `rule` over each response, as the critique stage asks it."""
    base = [(*messages_for(p), {"role": "assistant", "content": r}, {"role": "user", "content": rule.critique})
            for p, r in zip(items["prompt"], items["response"])]
    critiques = backend.generate([GenerationRequest(m, sampling, seed) for m in base])
    revise = [(*m, {"role": "assistant", "content": c.text}, {"role": "user", "content": rule.revision})
              for m, c in zip(base, critiques)]
    revisions = backend.generate([GenerationRequest(m, sampling, seed + 1) for m in revise])
    return [PreviewRow(p, r, c.error or c.text, v.error or v.text)
            for p, r, c, v in zip(items["prompt"], items["response"], critiques, revisions)]
