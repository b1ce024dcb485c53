"""Near-duplicate prompts: MinHash over word n-grams (numpy universal hashing over the exploded shingles,
min per prompt), LSH bands to find candidates, the exact n-gram Jaccard of each candidate pair, then
connected components; each cluster keeps its smallest prompt_id. Pairs sharing one prompt_id are one
prompt (n samples per prompt are normal), so they are never duplicates of each other. Only prompts
that survive the row filters before it take part, so a prompt is not dropped in favour of one those
filters dropped. Hashing is seeded, so results are deterministic for a given Polars version.
With `embedding_threshold` set, semantic paraphrases are caught too: the surviving prompts are embedded
(all-MiniLM-L6-v2 by default, engine/embeddings.py) and every pair at or above that cosine similarity
joins the MinHash edges before the connected components, so one cluster can mix both kinds of link.

Memory follows the number of distinct prompts, not of pairs: shingles and signatures are made a batch of
prompts at a time, and what stays for every prompt is its shingle hashes (for the exact Jaccard and the
diversity figures) and its LSH band keys. The batch size does not change any result.
LSH proposes a pair at exactly the threshold with probability ~0.91 (0.6: 10 bands of 3 min-hashes), so a
few borderline pairs go unseen; which ones depends on the hash function (the exact count is in
benchmarks/RESULTS.md, "quality filters at ten million pairs").
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np
import polars as pl

from engine.config import FilterConfig

NUM_PERM = 32  # MinHash functions; LSH only proposes candidates, their exact Jaccard decides
BATCH = 100_000  # prompts shingled and signed, and candidate pairs scored, at a time; results do not depend on it
_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant that chains word hashes into an n-gram hash


def drop_near_duplicate_prompts(rows: pl.DataFrame, cfg: FilterConfig,
                                batch_size: int = BATCH) -> tuple[pl.DataFrame, dict[str, Any]]:
    """prompt_id -> `_dup_detail` for each prompt dropped as a near-duplicate of a kept one, and diversity figures.

    `rows` holds (prompt_id, prompt), once or several times per prompt. Shingles and MinHash signatures are made
    `batch_size` prompts at a time, candidate pairs scored `batch_size` at a time; what is kept for all prompts
    is their shingle hashes and LSH band keys.
    """
    prompts = rows.unique("prompt_id").sort("prompt_id")
    owner, shingles = shingle_in_batches(prompts["prompt"], cfg.ngram, batch_size)
    n = prompts.height
    edges: list[tuple[np.ndarray, np.ndarray]] = []
    candidates = lexical = semantic = 0
    if cfg.near_duplicate_threshold is not None and n > 1:
        bands, per_band = lsh_bands(cfg.near_duplicate_threshold, NUM_PERM)
        u, v = lsh_candidates(lsh_band_keys(owner, shingles, n, bands, per_band, batch_size))
        candidates = len(u)
        edges.append(_similar(u, v, owner, shingles, cfg.near_duplicate_threshold, batch_size))
        lexical = len(edges[-1][0])
    if cfg.embedding_threshold is not None and n > 1:
        from engine.embeddings import embed_texts, similar_pairs

        vectors = embed_texts(prompts["prompt"].fill_null("").to_list(), cfg.embedding_model)
        edges.append(similar_pairs(vectors, cfg.embedding_threshold))
        semantic = len(edges[-1][0])
    labels = connected_components(n, np.concatenate([u for u, _ in edges]), np.concatenate([v for _, v in edges])) \
        if edges else np.arange(n)
    duplicate = labels != np.arange(n)
    ids = prompts["prompt_id"]
    dropped = pl.DataFrame({
        "prompt_id": ids.filter(duplicate),
        "_dup_detail": ("near-duplicate of prompt " + ids.gather(labels[duplicate])),
    }, schema={"prompt_id": pl.String, "_dup_detail": pl.String})
    kept = ~duplicate[owner]
    diversity = {
        "prompts_checked": n,
        "prompts_kept": int(n - duplicate.sum()),
        "near_duplicate_clusters": int(len(np.unique(labels[duplicate]))),
        "lsh_candidate_pairs": candidates,
        "similar_pairs": {"lexical": lexical, "embedding": semantic},
        f"distinct_{cfg.ngram}gram_ratio": {"checked": _distinct_ratio(shingles), "kept": _distinct_ratio(shingles[kept])},
    }
    return dropped, diversity


def shingle_in_batches(texts: pl.Series, n: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """word_ngram_hashes over `batch_size` texts at a time: its temporaries (a string per word) stay batch-sized."""
    owners, shingles = [np.empty(0, dtype=np.int32)], [np.empty(0, dtype=np.uint64)]
    for start in range(0, len(texts), batch_size):
        owner, hashes = word_ngram_hashes(texts.slice(start, batch_size), n)
        owners.append((owner + start).astype(np.int32))  # half the memory of int64, for every shingle
        shingles.append(hashes)
    return np.concatenate(owners), np.concatenate(shingles)


def word_ngram_hashes(texts: pl.Series, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(owner row, 64-bit hash) per word n-gram, grouped by row; a text shorter than n words is one shingle."""
    words = (
        pl.DataFrame({"text": texts}).with_row_index("owner").lazy()
        .select(pl.col("owner").cast(pl.Int64), pl.col("text").str.to_lowercase().str.extract_all(r"\w+").alias("w"))
        .explode("w", empty_as_null=True)  # a text without word characters ("👍") keeps one (empty) shingle
        .select("owner", pl.col("w").fill_null("").hash(0))
        .collect(engine="streaming")  # tokenizes in parallel, in row order
    )
    owner, hashes = words["owner"].to_numpy(), words["w"].to_numpy()
    counts = np.bincount(owner, minlength=len(texts))
    position = np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)
    gram = hashes.copy()
    for j in range(1, n):  # chain the next j-th word in, within the same text only
        same = np.zeros(len(owner), dtype=bool)
        same[:-j] = owner[j:] == owner[:-j]
        nxt = np.zeros_like(hashes)
        nxt[:-j] = hashes[j:]
        gram = np.where(same, (gram * _MIX) ^ nxt, gram)
    starts = (position <= counts[owner] - n) | (position == 0)
    return owner[starts], gram[starts]


def minhash_signatures(owner: np.ndarray, shingles: np.ndarray, n: int, k: int) -> np.ndarray:
    """k min-hashes per row by multiply-shift universal hashing: min over its shingles of (a*h + b) >> 32."""
    rng = np.random.default_rng(1)
    a = rng.integers(1, 2**63, size=k, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, size=k, dtype=np.uint64)
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    signatures = np.empty((n, k), dtype=np.uint64)

    def one(i: int) -> None:  # one vectorised pass per hash function; reduceat takes the min per row
        signatures[:, i] = np.minimum.reduceat((shingles * a[i] + b[i]) >> np.uint64(32), starts)

    _in_threads(one, range(k))
    return signatures


def _in_threads(work: Callable[[int], Any], items: range) -> list[Any]:
    """numpy releases the GIL inside its loops, so independent passes over big arrays use every core."""
    with ThreadPoolExecutor(max(1, os.cpu_count() or 1)) as pool:
        return list(pool.map(work, items))


def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """The most selective (bands, rows) that still proposes >= 90% of pairs at the threshold."""
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= 0.9:
            return bands, rows
    return num_perm, 1


def lsh_band_keys(owner: np.ndarray, shingles: np.ndarray, n: int, bands: int, rows: int, batch_size: int) -> np.ndarray:
    """(n, bands) hashes of each row's band of `rows` min-hashes, signed `batch_size` rows at a time."""
    keys = np.empty((n, bands), dtype=np.uint64)
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        lo, hi = np.searchsorted(owner, [start, stop])
        signatures = minhash_signatures(owner[lo:hi] - start, shingles[lo:hi], stop - start, bands * rows)
        keys[start:stop] = band_keys(signatures, bands, rows)
    return keys


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Chain each band's `rows` min-hashes into one 64-bit key per row and band: (n, bands)."""
    keys = signatures[:, 0::rows]  # the first min-hash of every band (signatures has bands * rows columns)
    for j in range(1, rows):
        keys = (keys * _MIX) ^ signatures[:, j::rows]
    return keys


def lsh_candidates(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows sharing a band key; each linked to the smallest row of its bucket (linear, not all pairs)."""
    def band_links(band: int) -> tuple[np.ndarray, np.ndarray]:
        key = keys[:, band]
        order = np.argsort(key, kind="stable")
        first = np.r_[True, key[order][1:] != key[order][:-1]]
        root = order[first][np.cumsum(first) - 1]
        linked = root != order
        return order[linked], root[linked]

    links = _in_threads(band_links, range(keys.shape[1]))
    pairs = np.unique(np.stack([np.concatenate([u for u, _ in links]), np.concatenate([v for _, v in links])]), axis=1)
    return pairs[0], pairs[1]


def _similar(u, v, owner, shingles, threshold: float, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep candidate pairs whose exact n-gram-set Jaccard reaches the threshold, `batch_size` pairs at a time."""
    if len(u) == 0:
        return u, v
    starts = np.searchsorted(owner, np.arange(owner[-1] + 2))  # owner is sorted: row i's shingles are starts[i]:starts[i+1]
    scored = [_similar_batch(u[i:i + batch_size], v[i:i + batch_size], starts, shingles, threshold)
              for i in range(0, len(u), batch_size)]
    return np.concatenate([a for a, _ in scored]), np.concatenate([b for _, b in scored])


def _similar_batch(u, v, starts, shingles, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    nodes = np.unique(np.r_[u, v])
    lengths = starts[nodes + 1] - starts[nodes]
    rows = np.repeat(starts[nodes] - (np.cumsum(lengths) - lengths), lengths) + np.arange(lengths.sum())
    sets = pl.DataFrame({"owner": np.repeat(nodes, lengths), "h": shingles[rows]}).unique()
    sizes = sets.group_by("owner").len()
    edges = pl.DataFrame({"u": u, "v": v})
    shared = (
        edges.join(sets, left_on="u", right_on="owner")
        .join(sets, left_on=["v", "h"], right_on=["owner", "h"], how="semi")
        .group_by("u", "v").len("shared")
    )
    scored = (
        edges.join(shared, on=["u", "v"], how="left")
        .join(sizes.rename({"len": "size_u"}), left_on="u", right_on="owner")
        .join(sizes.rename({"len": "size_v"}), left_on="v", right_on="owner")
        .with_columns(pl.col("shared").fill_null(0).cast(pl.Float64))
        .filter(pl.col("shared") / (pl.col("size_u") + pl.col("size_v") - pl.col("shared")) >= threshold)
    )
    return scored["u"].to_numpy(), scored["v"].to_numpy()


def connected_components(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Each node's label is the smallest node of its component (min-label propagation + pointer jumping)."""
    labels = np.arange(n)
    while len(u):
        before = labels.copy()
        low = np.minimum(labels[u], labels[v])
        np.minimum.at(labels, u, low)
        np.minimum.at(labels, v, low)
        labels = labels[labels]
        if np.array_equal(labels, before):
            break
    return labels


def _distinct_ratio(shingles: np.ndarray) -> float | None:
    return round(pl.Series(shingles).n_unique() / len(shingles), 4) if len(shingles) else None
