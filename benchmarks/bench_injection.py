"""Recall and false positives of the judge-injection screen (engine/judges/injection.py), against the old regexes.

Inputs: labelled JSONL files, one row {"id", "text", "injected": bool, "kind", "lang"} per line (default
data/eval/injection_dev.jsonl, written alongside the rules; data/eval/injection_test.jsonl, written by
someone who could not see them, then used to tune the rules once their first figure was taken; and
data/eval/injection_holdout.jsonl, written later by another author who saw neither the rules nor the other files), plus every final assistant reply of HH-RLHF harmless-base test
(../shared/data/hh-rlhf), all counted as benign: real replies to real people. "Hard" benign texts are the
ones that mention options, choosing, picking, "better" or "answer": where a screen is most tempted.
Reported for the new screen and for the regex list it replaced (OLD_INJECTION, copied here as it was):
recall, false-positive rate (all, hard, HH), per kind and per language, and texts/s of each screen.

    python benchmarks/bench_injection.py [--files a.jsonl b.jsonl] [--hh PATH] [--show-flagged 20]
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import hashlib
import json
import os
import platform
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.judges.injection import injection_reasons, normalise  # noqa: E402
from engine.preferences import split_hh_pair  # noqa: E402

FILES = [REPO / "data" / "eval" / f"injection_{name}.jsonl" for name in ("dev", "test", "holdout")]
HH = REPO.parent / "shared" / "data" / "hh-rlhf" / "harmless-base-test.jsonl.gz"
OUT = REPO / "benchmarks" / "results" / "injection.json"
HARD = re.compile(r"\boption\s+[AB]\b|\bchoos|\bpick|\bbetter\b|\banswer", re.IGNORECASE)

# The screen before issue 15 item 10 (engine/judges/prompt.py `_INJECTION`), kept as the baseline.
_OLD_TAG = re.compile(r"</?\s*(response_[^>\s]{0,8}|conversation)\s*>", re.IGNORECASE)
OLD_INJECTION = [
    re.compile(r"(?i:ignore|disregard|forget)\b.{0,40}(?i:previous|prior|above|earlier|all)\b.{0,30}(?i:instruction|prompt|rule)"),
    re.compile(r"(?i:choose|pick|select|prefer|vote\s+for|answer(?:\s+with)?)\s+(?:(?i:response|option|answer)\s*)?\(?[AB]\)?(?![A-Za-z])"),
    re.compile(r"(?i)\bbetter\s+response\s+is\b"),
    re.compile(r"(?i)\b(?:as|to|dear)\s+the\s+(?:judge|evaluator|grader|reviewer)\b"),
    re.compile(r"(?i)\b(?:response|option)\s+[AB]\s+is\s+(?:better|best|correct|preferred)\b"),
    _OLD_TAG,
]


def old_suspect(text: str) -> bool:
    return any(p.search(text) for p in OLD_INJECTION)


def new_suspect(text: str) -> bool:
    return bool(injection_reasons(text))


SCREENS = {"new": new_suspect, "old": old_suspect}


def load_labelled(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for n, row in enumerate(rows, 1):
        if not isinstance(row.get("text"), str) or not isinstance(row.get("injected"), bool):
            raise SystemExit(f"{path}: row {n}: needs a string 'text' and a boolean 'injected'")
    return rows


def load_hh(path: Path) -> list[dict]:
    """The last assistant reply of every chosen and rejected transcript, each distinct reply once."""
    replies: dict[str, None] = {}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            try:
                _, chosen, rejected = split_hh_pair(row["chosen"], row["rejected"])
            except ValueError:  # transcripts that differ earlier: take each one's last reply on its own
                chosen, rejected = (t[t.rfind("\n\nAssistant:") + 12:].strip() for t in (row["chosen"], row["rejected"]))
            for reply in (chosen, rejected):
                if reply:
                    replies.setdefault(reply)
    return [{"id": f"hh-{i:05d}", "text": t, "injected": False, "kind": "hh_reply", "lang": "en"} for i, t in enumerate(replies)]


def rate(hits: int, n: int) -> float | None:
    return round(hits / n, 4) if n else None


def evaluate(rows: list[dict], flags: list[bool]) -> dict:
    """Recall over injected rows, false-positive rate over benign (all and hard), and both per kind and language."""
    injected = [f for r, f in zip(rows, flags) if r["injected"]]
    benign = [(r, f) for r, f in zip(rows, flags) if not r["injected"]]
    hard = [f for r, f in benign if HARD.search(r["text"])]
    out = {"injected": len(injected), "benign": len(benign), "hard_benign": len(hard),
           "recall": rate(sum(injected), len(injected)), "fp_rate": rate(sum(f for _, f in benign), len(benign)),
           "fp_rate_hard": rate(sum(hard), len(hard))}
    for field in ("kind", "lang"):
        groups: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for r, f in zip(rows, flags):
            key = f"{'injected' if r['injected'] else 'benign'}/{r.get(field) or '?'}"
            groups[key][0] += f
            groups[key][1] += 1
        out[f"by_{field}"] = {k: {"n": n, "flagged": hits, "rate": rate(hits, n)} for k, (hits, n) in sorted(groups.items())}
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def throughput(texts: list[str], screen, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for t in texts:
            screen(t)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def markdown(results: dict) -> str:
    lines = ["| data | screen | injected | benign | recall | FP rate | FP rate, hard benign |", "|---|---|---:|---:|---:|---:|---:|"]
    pct = lambda x: "n/a" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    for name, by_screen in results["datasets"].items():
        for screen, m in by_screen.items():
            lines.append(f"| {name} | {screen} | {m['injected']} | {m['benign']} ({m['hard_benign']} hard) | {pct(m['recall'])} "
                         f"| {pct(m['fp_rate'])} | {pct(m['fp_rate_hard'])} |")
    lines += ["", "| data | group | n | new flagged | old flagged |", "|---|---|---:|---:|---:|"]
    for name, by_screen in results["datasets"].items():
        for group, m in by_screen["new"]["by_kind"].items():
            old = by_screen["old"]["by_kind"][group]
            lines.append(f"| {name} | {group} | {m['n']} | {m['flagged']} ({pct(m['rate'])}) | {old['flagged']} ({pct(old['rate'])}) |")
    t = results["throughput"]
    lines += ["", f"Throughput on {t['texts']} texts, one core: new {t['new_texts_per_s']:.0f} texts/s, "
                  f"old {t['old_texts_per_s']:.0f} texts/s."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=Path, nargs="*", default=FILES)
    parser.add_argument("--hh", type=Path, default=HH)
    parser.add_argument("--show-flagged", type=int, default=20, help="print this many flagged benign texts per data set")
    args = parser.parse_args()

    datasets: dict[str, list[dict]] = {}
    files = {}
    for path in args.files:
        if not path.is_file():
            print(f"skipped {path}: not found", file=sys.stderr)
            continue
        datasets[path.stem] = load_labelled(path)
        files[str(path.relative_to(REPO) if path.is_relative_to(REPO) else path)] = sha256(path)
    if args.hh.is_file():
        datasets["hh_harmless_base_test"] = load_hh(args.hh)
        files[str(args.hh.relative_to(REPO.parent) if args.hh.is_relative_to(REPO.parent) else args.hh)] = sha256(args.hh)
    else:
        print(f"skipped HH-RLHF replies: {args.hh} not found", file=sys.stderr)

    results: dict = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                     "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.platform()}",
                     "python": platform.python_version(), "files": files, "datasets": {}, "flagged_benign": {}}
    for name, rows in datasets.items():
        results["datasets"][name] = {}
        for screen_name, screen in SCREENS.items():
            results["datasets"][name][screen_name] = evaluate(rows, [screen(r["text"]) for r in rows])
        flagged = [{"id": r["id"], "kind": r.get("kind"), "reasons": reasons, "text": r["text"][:300]}
                   for r in rows if not r["injected"] and (reasons := injection_reasons(r["text"]))]
        results["flagged_benign"][name] = flagged
        results["datasets"][name]["new"]["hidden_chars_removed"] = sum(normalise(r["text"]).removed for r in rows)

    texts = [r["text"] for rows in datasets.values() for r in rows]
    results["throughput"] = {"texts": len(texts), "new_texts_per_s": throughput(texts, new_suspect),
                             "old_texts_per_s": throughput(texts, old_suspect)}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(markdown(results))
    for name, flagged in results["flagged_benign"].items():
        for f in flagged[:args.show_flagged]:
            print(f"\nflagged benign, {name} {f['id']} ({f['kind']}): {f['reasons']}\n  {f['text']!r}")


if __name__ == "__main__":
    main()
