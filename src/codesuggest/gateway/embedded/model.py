"""Order-6 interpolated modified Kneser-Ney token model, stored as numpy tables.

Layout, per order ``n`` (context length ``L = n - 1``):

* ``k{n}``: sorted ``uint64`` n-gram keys ``(ctx_hash44 << 20) | token_id``; all
  successors of a context are therefore one contiguous range;
* ``c{n}``: ``uint32`` counts (raw counts for the top order, continuation counts
  ``N1+(. h w)`` for the lower orders, as Kneser-Ney prescribes);
* ``ck{n}``/``cs{n}``/``ct{n}``/``cg{n}``: per context its 44-bit hash, the start
  of its successor range in ``k{n}``, its total count, and its back-off weight
  ``gamma = (D1 N1 + D2 N2 + D3+ N3+) / total``;
* ``d{n}``: the three modified-KN discounts.

Lookups are ``np.searchsorted`` on these arrays, so loading is a single
``np.load`` and memory is a few tens of MB.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from collections import Counter
from typing import Any

import numpy as np

from .lexer import BOS, UNK

ORDER = 6
ID_BITS = 20
ID_MASK = (1 << ID_BITS) - 1
MAX_VOCAB = 1 << ID_BITS
FORMAT_VERSION = 1
BOS_ID = 0
UNK_ID = 1

_M64 = (1 << 64) - 1
_MUL = 0x9E3779B97F4A7C15
_SEED = 0x2545F4914F6CDD1D


def _mix_np(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _mix_py(x: int) -> int:
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _M64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def context_hashes(hist: list[int], max_len: int = ORDER - 1) -> list[int]:
    """44-bit hashes of the contexts of length 0..max_len ending at ``hist[-1]``."""
    out = []
    h = _SEED
    out.append(h >> ID_BITS)
    for i in range(1, max_len + 1):
        t = hist[-i] if i <= len(hist) else BOS_ID
        h = _mix_py((h * _MUL + t + 1) & _M64)
        out.append(h >> ID_BITS)
    return out


def _discounts(counts: np.ndarray) -> np.ndarray:
    n = [int(np.count_nonzero(counts == k)) for k in (1, 2, 3, 4)]
    if min(n) == 0:
        return np.array([0.5, 1.0, 1.5])
    y = n[0] / (n[0] + 2 * n[1])
    d = [1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2]]
    return np.clip(np.array(d), 0.05, None)


class KNModel:
    """Query side of the Kneser-Ney tables (see the module docstring)."""

    def __init__(self, arrays: dict[str, np.ndarray], vocab: list[str]):
        self.a = arrays
        self.vocab = vocab
        self.size = len(vocab)
        self.tok2id = {t: i for i, t in enumerate(vocab)}
        self.sorted_ids = arrays["sorted_ids"]
        self.sorted_vocab = [vocab[i] for i in self.sorted_ids.tolist()]
        self.freq = arrays["freq"]
        self.k = {n: arrays[f"k{n}"] for n in range(1, ORDER + 1)}
        self.c = {n: arrays[f"c{n}"] for n in range(1, ORDER + 1)}
        self.ck = {n: arrays[f"ck{n}"] for n in range(1, ORDER + 1)}
        self.cs = {n: arrays[f"cs{n}"] for n in range(1, ORDER + 1)}
        self.ct = {n: arrays[f"ct{n}"] for n in range(1, ORDER + 1)}
        self.cg = {n: arrays[f"cg{n}"] for n in range(1, ORDER + 1)}
        self.d = {
            n: np.concatenate([[0.0], arrays[f"d{n}"]]).astype(np.float64)
            for n in range(1, ORDER + 1)
        }
        self.top_unigrams = arrays["top_unigrams"]
        self._top: dict[tuple[int, int, int], np.ndarray] = {}  # see _successors

    # ----------------------------------------------------------------- lookups
    def contexts(self, hist: list[int]) -> list[tuple[int, int, int]]:
        """For each order n whose context is in the tables, (n, ctx_hash, ctx_index)."""
        found = []
        for n, ck in enumerate(context_hashes(hist), start=1):
            arr = self.ck[n]
            # The key as uint64: with a Python int numpy would copy the whole table to float64
            # on every lookup (its common type with uint64), 200 times slower.
            j = int(arr.searchsorted(np.uint64(ck)))
            if j >= len(arr) or int(arr[j]) != ck:
                break
            found.append((n, ck, j))
        return found

    def candidates(self, ctxs: list[tuple[int, int, int]], per_order: int = 24) -> np.ndarray:
        parts = [self.top_unigrams]
        for n, _ck, j in ctxs:
            if n > 1:
                parts.append(self._successors(n, j, per_order))
        return np.unique(np.concatenate(parts))

    def _successors(self, n: int, j: int, per_order: int) -> np.ndarray:
        """Ids of the `per_order` most frequent successors of context `j` of order `n`.

        Selecting them in a range of thousands costs more than the rest of a decoding step,
        and the contexts that have more than `per_order` successors are few (about 2,600 in
        the stdlib tables) and recur, so their selection is kept: at most ~0.5 MB.
        """
        lo, hi = int(self.cs[n][j]), int(self.cs[n][j + 1])
        if hi - lo <= per_order:
            return (self.k[n][lo:hi] & np.uint64(ID_MASK)).astype(np.int64)
        key = (n, j, per_order)
        ids = self._top.get(key)
        if ids is None:
            top = np.argpartition(self.c[n][lo:hi], -per_order)[-per_order:]
            ids = (self.k[n][lo:hi][top] & np.uint64(ID_MASK)).astype(np.int64)
            ids.flags.writeable = False
            self._top[key] = ids
        return ids

    def prob(self, ctxs: list[tuple[int, int, int]], cand: np.ndarray) -> np.ndarray:
        """Interpolated KN probability of each id in ``cand`` (ids >= size get ~0)."""
        cand = np.asarray(cand, dtype=np.int64)
        inside = cand < self.size
        safe = np.where(inside, cand, UNK_ID).astype(np.uint64)
        p = np.full(len(cand), 1.0 / self.size)
        for n, ck, j in ctxs:
            keys = self.k[n]
            q = (np.uint64(ck) << np.uint64(ID_BITS)) | safe
            idx = np.searchsorted(keys, q)
            idx[idx >= len(keys)] = len(keys) - 1
            cnt = np.where(keys[idx] == q, self.c[n][idx], 0).astype(np.float64)
            disc = self.d[n][np.minimum(cnt, 3).astype(np.int64)]
            p = (cnt - disc) / float(self.ct[n][j]) + float(self.cg[n][j]) * p
        return np.where(inside, p, 0.0)

    def prefix_ids(self, prefix: str, limit: int = 256) -> np.ndarray:
        """Ids of the (at most ``limit`` most frequent) tokens starting with ``prefix``."""
        import bisect

        lo = bisect.bisect_left(self.sorted_vocab, prefix)
        hi = bisect.bisect_left(self.sorted_vocab, prefix + "\U0010ffff")
        ids = self.sorted_ids[lo:hi].astype(np.int64)
        if len(ids) > limit:
            ids = ids[np.argpartition(self.freq[ids], -limit)[-limit:]]
        return ids

    # ------------------------------------------------------------- persistence
    def save(self, path: pathlib.Path) -> None:
        """Write the tables atomically (temp file in the same folder, then rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = np.frombuffer("\x00".join(self.vocab).encode("utf-8"), dtype=np.uint8)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                tables: dict[str, Any] = {
                    "vocab_blob": blob,
                    "format": np.array([FORMAT_VERSION]),
                    **self.a,
                }
                np.savez(fh, **tables)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    @classmethod
    def load(cls, path: pathlib.Path) -> KNModel:
        with np.load(path, allow_pickle=False) as z:
            if int(z["format"][0]) != FORMAT_VERSION:
                raise ValueError(f"{path}: format {int(z['format'][0])} != {FORMAT_VERSION}")
            arrays = {k: z[k] for k in z.files if k not in ("vocab_blob", "format")}
            vocab = z["vocab_blob"].tobytes().decode("utf-8").split("\x00")
        return cls(arrays, vocab)


def train(token_streams: list[list[str]]) -> KNModel:
    """Build the KN tables from lexed files (one token list per file)."""
    counter: Counter[str] = Counter()
    for toks in token_streams:
        counter.update(toks)
    counter.pop(BOS, None)
    counter.pop(UNK, None)
    vocab = [BOS, UNK] + [
        t for t, _ in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])) if "\x00" not in t
    ]
    vocab = vocab[:MAX_VOCAB]
    tok2id = {t: i for i, t in enumerate(vocab)}
    pad = [BOS_ID] * (ORDER - 1)
    seq_parts = []
    for toks in token_streams:
        seq_parts.append(pad)
        seq_parts.append([tok2id.get(t, UNK_ID) for t in toks])
    seq = np.fromiter(
        (i for part in seq_parts for i in part), dtype=np.int64, count=sum(map(len, seq_parts))
    )
    tgt = np.flatnonzero(seq != BOS_ID)
    w = seq[tgt].astype(np.uint64)
    # context hashes, built from the nearest token outwards (matches context_hashes()).
    keys = []
    h = np.full(len(tgt), _SEED, dtype=np.uint64)
    for L in range(ORDER):
        if L:
            h = _mix_np(h * np.uint64(_MUL) + seq[tgt - L].astype(np.uint64) + np.uint64(1))
        keys.append(((h >> np.uint64(ID_BITS)) << np.uint64(ID_BITS)) | w)
    arrays: dict[str, np.ndarray] = {}
    high = None
    for n in range(ORDER, 0, -1):
        key = keys[n - 1]
        if n == ORDER:
            uk, cnt = np.unique(key, return_counts=True)
        else:
            # continuation count: number of distinct left extensions (from order n+1)
            uk, cnt = np.unique(key[high], return_counts=True)
        if n > 1:
            _, high = np.unique(key, return_index=True)
        cnt = cnt.astype(np.uint32)
        d = _discounts(cnt)
        ctx = uk >> np.uint64(ID_BITS)
        ckeys, cstart = np.unique(ctx, return_index=True)
        total = np.add.reduceat(cnt.astype(np.int64), cstart)
        nk = [np.add.reduceat((cnt == k).astype(np.int64), cstart) for k in (1, 2)]
        n3 = np.add.reduceat((cnt >= 3).astype(np.int64), cstart)
        gamma = (d[0] * nk[0] + d[1] * nk[1] + d[2] * n3) / total
        arrays[f"k{n}"] = uk
        arrays[f"c{n}"] = cnt
        arrays[f"ck{n}"] = ckeys
        arrays[f"cs{n}"] = np.append(cstart, len(uk)).astype(np.uint32)
        arrays[f"ct{n}"] = total.astype(np.uint32)
        arrays[f"cg{n}"] = gamma.astype(np.float32)
        arrays[f"d{n}"] = d
        if n == 1:
            freq = np.zeros(len(vocab), dtype=np.uint32)
            freq[(uk & np.uint64(ID_MASK)).astype(np.int64)] = cnt
            arrays["freq"] = freq
            arrays["top_unigrams"] = np.sort(np.argsort(-freq.astype(np.int64))[:32])
    arrays["sorted_ids"] = np.array(
        sorted(range(len(vocab)), key=vocab.__getitem__), dtype=np.uint32
    )
    return KNModel(arrays, vocab)
