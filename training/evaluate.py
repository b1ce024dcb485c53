"""Policy evaluation: win rate against the reference, judged by charter's judge, beside reward-hacking monitors.

Both models answer the same prompts greedily; the judge compares policy (A) with reference (B) under the
constitution's comparison principles, in both orders (judge_pairs). The monitors say whether a win rate
came from somewhere suspicious: longer answers, more refusals of harmless requests, drift from the
reference (KL), or reward-model scores rising without judged quality.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import polars as pl

from engine.backends import Backend, Completion, GenerationRequest, Sampling, load_backend
from engine.backends.chat import render_chat
from engine.config import JudgeConfig
from engine.constitution import Constitution
from engine.conversation import messages_for
from engine.errors import CharterError
from engine.judges import judge_items, judge_pairs
from engine.validation import format_number
from training.refusal import is_refusal

REPORT = "policy_eval"


def evaluate_policy(
    policy_dir: str | Path, reference_dir: str | Path, prompts: Sequence[str], judge_backend: Backend,
    constitution: Constitution, *, harmless_prompts: Sequence[str] = (), reward_model_dir: str | Path | None = None,
    judge_cfg: JudgeConfig = JudgeConfig(principles=2), max_tokens: int = 64, batch_size: int = 8, seed: int = 0,
    out_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Win rate of policy vs reference and the monitors for both; written as JSON + text to out_dir when given."""
    if not prompts:
        raise CharterError("policy evaluation needs at least one prompt")
    answers, kl = _generate_both(policy_dir, reference_dir, list(prompts), list(harmless_prompts), max_tokens, batch_size, seed)
    n = len(prompts)
    items = judge_items([f"eval-{i}" for i in range(n)], list(prompts),
                        [c.text for c in answers["policy"][:n]], [c.text for c in answers["reference"][:n]])
    judged = judge_pairs(items, judge_backend, judge_cfg, constitution, seed)
    rewards = _reward_means(reward_model_dir, prompts, answers, n, batch_size)
    report = {
        "policy": str(policy_dir), "reference": str(reference_dir), "judge": judge_backend.model_id,
        "constitution": f"{constitution.name} {constitution.version} ({constitution.sha256[:12]})",
        "prompts": n, "harmless_prompts": len(harmless_prompts),
        **win_rates(judged),
        "monitors": {name: monitors(answers[name], n, rewards.get(name)) for name in ("policy", "reference")},
        "kl_to_reference": kl,
        "settings": {"max_tokens": max_tokens, "judge_principles": judge_cfg.principles, "seed": seed},
    }
    if out_dir is not None:
        write_report(report, judged, Path(out_dir))
    return report


def win_rates(judged: pl.DataFrame) -> dict[str, Any]:
    """Policy (response_a) wins: p_a > 0.5 counts 1, a tie at 0.5 (e.g. identical answers) counts half."""
    scored = judged.filter(pl.col("p_a").is_not_null())
    if scored.height == 0:
        return {"win_rate": None, "soft_win_rate": None, "ties": 0, "identical": 0, "unscored": judged.height}
    tie = (pl.col("p_a") - 0.5).abs() < 1e-9  # identical answers give p_a = (p + (1 - p)) / 2, up to rounding
    stats = scored.select(
        pl.when(tie).then(0.5).otherwise((pl.col("p_a") > 0.5).cast(pl.Float64)).mean().alias("win_rate"),
        pl.col("p_a").mean().alias("soft_win_rate"),
        tie.sum().alias("ties"),
        pl.col("swap_consistent").cast(pl.Float64).mean().alias("swap_consistency"),
    ).row(0, named=True)
    return {
        **stats,
        "identical": int((judged["response_a"] == judged["response_b"]).sum()),
        "unscored": judged.height - scored.height,
    }


def monitors(completions: list[Completion], n_prompts: int, reward_mean: float | None) -> dict[str, Any]:
    """Length, truncation and refusal rates (on the evaluation prompts, and on the harmless ones after them)."""
    main, harmless = completions[:n_prompts], completions[n_prompts:]
    return {
        "mean_length_chars": float(np.mean([len(c.text) for c in main])),
        "mean_completion_tokens": float(np.mean([c.completion_tokens for c in main])),
        "truncated_share": float(np.mean([c.finish_reason == "length" for c in main])),
        "refusal_rate": float(np.mean([is_refusal(c.text) for c in main])),
        "harmless_refusal_rate": float(np.mean([is_refusal(c.text) for c in harmless])) if harmless else None,
        "reward_mean": reward_mean,
    }


def _generate_both(policy_dir, reference_dir, prompts, harmless, max_tokens, batch_size, seed):
    """Greedy answers from each model (one loaded at a time) and the KL of the policy's own samples to the reference."""
    greedy = Sampling(temperature=0.0, top_p=1.0, max_tokens=max_tokens)
    sampled = Sampling(temperature=1.0, top_p=1.0, max_tokens=max_tokens)  # KL is an expectation over the policy's samples
    chats = [messages_for(p) for p in prompts + harmless]
    policy = load_backend("transformers", str(policy_dir), {"batch_size": batch_size}, seed)
    answers = {"policy": policy.generate([GenerationRequest(m, greedy, seed) for m in chats])}
    samples = policy.generate([GenerationRequest(m, sampled, seed + i) for i, m in enumerate(chats[:len(prompts)])])
    pairs = [(render_chat(policy.tokenizer, m), policy.tokenizer(s.text, add_special_tokens=False)["input_ids"])
             for m, s in zip(chats, samples)]
    pairs = [(p, r) for p, r in pairs if r]
    policy_lp = response_logprobs(policy.model, policy.tokenizer, pairs, batch_size)
    vocab = policy.tokenizer.get_vocab()
    del policy
    reference = load_backend("transformers", str(reference_dir), {"batch_size": batch_size}, seed)
    answers["reference"] = reference.generate([GenerationRequest(m, greedy, seed) for m in chats])
    if reference.tokenizer.get_vocab() != vocab:
        return answers, {"per_token": None, "note": "policy and reference tokenizers differ; KL not computed"}
    reference_lp = response_logprobs(reference.model, reference.tokenizer, pairs, batch_size)
    return answers, kl_summary(policy_lp, reference_lp)


def kl_summary(policy_lp: list[np.ndarray], reference_lp: list[np.ndarray]) -> dict[str, Any]:
    """Mean per-token log-ratio log pi(y_t) - log pi_ref(y_t) on the policy's samples, and its per-sequence sum."""
    if not policy_lp:
        return {"per_token": None, "per_sequence": None, "samples": 0}
    ratios = [p - r for p, r in zip(policy_lp, reference_lp)]
    return {
        "per_token": float(np.concatenate(ratios).mean()),
        "per_sequence": float(np.mean([x.sum() for x in ratios])),
        "samples": len(ratios),
    }


def response_logprobs(model, tokenizer, pairs: list[tuple[list[int], list[int]]], batch_size: int) -> list[np.ndarray]:
    """Log-probability of each response token given its prompt (right-padded batches, one forward pass each)."""
    import torch

    out: list[np.ndarray] = []
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with torch.inference_mode():
        for start in range(0, len(pairs), batch_size):
            batch = pairs[start:start + batch_size]
            seqs = [p + r for p, r in batch]
            width = max(map(len, seqs))
            ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=device)
            mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=device)
            logprobs = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
            for row, (p, r) in enumerate(batch):
                positions = torch.arange(len(p) - 1, len(p) + len(r) - 1, device=device)
                targets = torch.tensor(r, device=device)
                out.append(logprobs[row, positions, targets].cpu().numpy())
    return out


def _reward_means(reward_model_dir, prompts, answers, n, batch_size) -> dict[str, float]:
    """Mean reward-model score of each model's greedy answers to the evaluation prompts."""
    if reward_model_dir is None:
        return {}
    from training.reward import RewardScorer

    scorer = RewardScorer(reward_model_dir, batch_size=batch_size)
    conversations = [[{"role": "user", "content": p}] for p in prompts]
    return {name: float(scorer.score(conversations, [c.text for c in answers[name][:n]]).mean()) for name in answers}


def write_report(report: dict[str, Any], judged: pl.DataFrame, out: Path) -> None:
    """policy_eval.json, policy_eval.txt (for people) and the judged answers (policy_eval_samples.parquet)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{REPORT}.json").write_text(json.dumps(report, indent=2))
    (out / f"{REPORT}.txt").write_text(text_report(report))
    judged.select("pair_id", "prompt", pl.col("response_a").alias("policy"), pl.col("response_b").alias("reference"),
                  "p_a", "swap_consistent").write_parquet(out / f"{REPORT}_samples.parquet")


def text_report(report: dict[str, Any]) -> str:
    num = format_number
    kl = report["kl_to_reference"]
    lines = [
        f"policy    {report['policy']}",
        f"reference {report['reference']}",
        f"judge     {report['judge']} ({report['constitution']}), {report['prompts']} prompts",
        "",
        f"win rate (policy vs reference): {num(report['win_rate'])}   soft: {num(report['soft_win_rate'])}   "
        f"ties: {report['ties']}   identical answers: {report['identical']}   unscored: {report['unscored']}",
        f"KL to reference: {num(kl.get('per_token'))} per token, {num(kl.get('per_sequence'))} per response",
        "",
        f"{'monitor':<26}{'policy':>12}{'reference':>12}",
    ]
    for key in report["monitors"]["policy"]:
        lines.append(f"{key:<26}{num(report['monitors']['policy'][key]):>12}{num(report['monitors']['reference'][key]):>12}")
    return "\n".join(lines) + "\n"
