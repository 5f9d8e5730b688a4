"""Per-request cache model: n-gram statistics of the request's own text.

The token sequence is ``context files..., suffix, prefix`` (prefix last, so the
cursor's history is the end of the sequence). Instead of building count tables,
each query matches the history against the sequence with numpy (positions whose
previous ``L`` tokens equal the last ``L`` history tokens), for ``L = 1..5``, and
estimates an interpolated Witten-Bell distribution from the successors.
"""

from __future__ import annotations

import numpy as np

from .model import BOS_ID, ORDER, UNK_ID

# weight of the cache model by the longest context it matched (0..5 tokens)
LAMBDA_BY_MATCH = (0.02, 0.1, 0.25, 0.45, 0.6, 0.7)


class CacheModel:
    def __init__(self, ids: list[int]):
        self.seq = np.asarray(ids, dtype=np.int64)
        real = self.seq[(self.seq != BOS_ID) & (self.seq != UNK_ID)]
        self.uniq, self.ucount = np.unique(real, return_counts=True)
        self.total = int(real.size)

    def query(self, hist: list[int]) -> list[np.ndarray]:
        """Successor ids of the history's contexts of length 1, 2, ... (longest last)."""
        seq = self.seq
        if seq.size < 2 or not hist:
            return []
        pos = np.flatnonzero(seq[:-1] == hist[-1])
        levels: list[np.ndarray] = []
        length = 1
        while pos.size:
            succ = seq[pos + 1]
            succ = succ[succ != BOS_ID]
            if not succ.size:
                break
            levels.append(succ)
            length += 1
            if length > ORDER - 1 or length > len(hist) or hist[-length] == BOS_ID:
                break
            prev = pos - (length - 1)
            keep = prev >= 0
            pos, prev = pos[keep], prev[keep]
            pos = pos[seq[prev] == hist[-length]]
        return levels

    def candidates(self, levels: list[np.ndarray]) -> np.ndarray:
        if not levels:
            return np.empty(0, dtype=np.int64)
        return np.unique(np.concatenate(levels[-3:]))

    def prob(self, levels: list[np.ndarray], cand: np.ndarray) -> np.ndarray:
        cand = np.asarray(cand, dtype=np.int64)
        p = np.full(cand.size, 1.0 / (self.uniq.size + 1))
        if self.total:
            idx = np.minimum(np.searchsorted(self.uniq, cand), self.uniq.size - 1)
            c = np.where(self.uniq[idx] == cand, self.ucount[idx], 0)
            t = self.uniq.size
            p = (c + t * p) / (self.total + t)
        for succ in levels:
            u, cnt = np.unique(succ, return_counts=True)
            idx = np.minimum(np.searchsorted(u, cand), u.size - 1)
            c = np.where(u[idx] == cand, cnt[idx], 0)
            p = (c + u.size * p) / (succ.size + u.size)
        return p

    @staticmethod
    def weight(levels: list[np.ndarray]) -> float:
        """Mixture weight: grows with the length and support of the longest match."""
        if not levels:
            return LAMBDA_BY_MATCH[0]
        n = levels[-1].size
        return LAMBDA_BY_MATCH[min(len(levels), len(LAMBDA_BY_MATCH) - 1)] * n / (n + 0.5)
