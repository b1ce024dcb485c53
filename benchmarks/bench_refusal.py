"""Refusal detectors on human-labelled completions: the rule set in training/refusal.py against two baselines.

    python benchmarks/bench_refusal.py                          # data/eval/refusal_dev.jsonl and refusal_test.jsonl
    python benchmarks/bench_refusal.py path/to/labelled.jsonl   # any file of {"id","completion","refusal","kind"} rows

Detectors:
    v2 rules          training.refusal.is_refusal (what the policy-evaluation monitors use)
    v1 phrase regex   the detector it replaced: one phrase anywhere ("I can't", "I'm sorry", "As an AI", ...)
    starts with       refusal iff the first sentence holds an apology or decline phrase

The dev file is where the rules were written and tuned; the test file was written by someone who had not seen
them. Writes benchmarks/results/refusal.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import time
from collections.abc import Callable
from pathlib import Path

from training.refusal import is_refusal

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FILES = (REPO / "data" / "eval" / "refusal_dev.jsonl", REPO / "data" / "eval" / "refusal_test.jsonl")
OUT = REPO / "benchmarks" / "results" / "refusal.json"

# training/evaluate.py's detector before the rule set, copied verbatim as the baseline.
V1_PHRASES = re.compile(
    r"\b(i can ?not|i can't|i'm sorry|i am sorry|i apologi[sz]e|as an ai|i'm not able to|i am not able to|"
    r"i'm unable|i am unable|i won't|i will not|i must decline|i'm afraid i can't)\b"
)
OPENING_PHRASES = re.compile(
    r"\b(sorry|i apologi[sz]e|apologies|unfortunately|i'm afraid|i can ?not|i can't|i won't|i will not|"
    r"i'm unable|i am unable|i'm not able|i am not able|i must decline|as an ai)\b|^no\b"
)


def v1_phrase_regex(text: str) -> bool:
    return V1_PHRASES.search(text.lower().replace("\u2019", "'")) is not None


def starts_with(text: str) -> bool:
    first_sentence = re.split(r"(?<=[.!?])\s+|\n", text.strip().lower().replace("\u2019", "'"), maxsplit=1)[0]
    return OPENING_PHRASES.search(first_sentence) is not None


DETECTORS: dict[str, Callable[[str], bool]] = {
    "v2 rules": is_refusal, "v1 phrase regex": v1_phrase_regex, "starts with": starts_with}


def load_rows(path: Path) -> list[dict]:
    """The file's rows, each checked for a string completion, a boolean label and a kind."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        for field, kind in (("completion", str), ("refusal", bool), ("kind", str)):
            if not isinstance(row.get(field), kind):
                raise SystemExit(f"{path}:{n}: '{field}' must be a {kind.__name__}")
        rows.append(row)
    return rows


def metrics(labels: list[bool], predicted: list[bool], kinds: list[str]) -> dict:
    """Accuracy, precision, recall, F1, confusion counts and accuracy per kind of one detector on one file."""
    tp = sum(p and y for p, y in zip(predicted, labels))
    fp = sum(p and not y for p, y in zip(predicted, labels))
    fn = sum(y and not p for p, y in zip(predicted, labels))
    tn = len(labels) - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    per_kind: dict[str, list[int]] = {}
    for kind, p, y in zip(kinds, predicted, labels):
        right_total = per_kind.setdefault(kind, [0, 0])
        right_total[0] += p == y
        right_total[1] += 1
    return {
        "accuracy": (tp + tn) / len(labels), "precision": precision, "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "tp": tp, "fp": fp, "tn": tn, "fn": fn,
        "per_kind": {kind: {"accuracy": right / total, "rows": total} for kind, (right, total) in sorted(per_kind.items())},
    }


def evaluate_file(path: Path) -> dict:
    rows = load_rows(path)
    labels, kinds = [r["refusal"] for r in rows], [r["kind"] for r in rows]
    out = {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "rows": len(rows), "refusals": sum(labels)}
    for name, detect in DETECTORS.items():
        start = time.perf_counter()
        predicted = [detect(r["completion"]) for r in rows]
        out[name] = metrics(labels, predicted, kinds) | {"seconds": time.perf_counter() - start}
        if name == "v2 rules":
            out[name]["wrong_ids"] = [r.get("id") for r, p in zip(rows, predicted) if p != r["refusal"]]
    return out


def markdown(results: dict) -> str:
    lines = []
    for file, res in results["files"].items():
        lines += [f"**{file}** ({res['rows']} rows, {res['refusals']} refusals, sha256 {res['sha256'][:12]})", "",
                  "| detector | accuracy | precision | recall | F1 | TP | FP | TN | FN |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name in DETECTORS:
            m = res[name]
            lines.append(f"| {name} | {m['accuracy']:.1%} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} "
                         f"| {m['tp']} | {m['fp']} | {m['tn']} | {m['fn']} |")
        lines += ["", "| kind | rows | " + " | ".join(DETECTORS) + " |", "|---|---:|" + "---:|" * len(DETECTORS)]
        for kind, k in res["v2 rules"]["per_kind"].items():
            cells = " | ".join(f"{res[name]['per_kind'][kind]['accuracy']:.0%}" for name in DETECTORS)
            lines.append(f"| {kind} | {k['rows']} | {cells} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, help="labelled JSONL files (default: dev and test)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    files = args.files or [f for f in DEFAULT_FILES if f.is_file()]
    if not files:
        raise SystemExit("no labelled files: pass paths or create data/eval/refusal_dev.jsonl")
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.platform()}",
        "python": platform.python_version(),
        "files": {str(f.resolve().relative_to(REPO)) if f.resolve().is_relative_to(REPO) else str(f): evaluate_file(f)
                  for f in files},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
