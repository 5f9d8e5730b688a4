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
LAMBDA_BY_MATCH = (0.02, 0.05, 0.15, 0.3, 0.45, 0.6)


class CacheModel:
    def __init__(self, ids: list[int], canon: list[int] | None = None):
        self.seq = np.asarray(ids, dtype=np.int64)
        self.canon = np.asarray(canon, dtype=np.int64) if canon is not None else None
        self._unigrams: dict[bool, tuple[np.ndarray, np.ndarray, int]] = {}

    def _sequence(self, canonical: bool) -> np.ndarray:
        if not canonical:
            return self.seq
        if self.canon is None:
            raise ValueError("this cache was built without canonical ids")
        return self.canon

    def unigrams(self, canonical: bool = False) -> tuple[np.ndarray, np.ndarray, int]:
        if canonical not in self._unigrams:
            seq = self._sequence(canonical)
            real = seq[(self.seq != BOS_ID) & (self.seq != UNK_ID)]
            u, c = np.unique(real, return_counts=True)
            self._unigrams[canonical] = (u, c, int(real.size))
        return self._unigrams[canonical]

    def query(self, hist: list[int]) -> list[np.ndarray]:
        """Successor positions of the history's contexts of length 1, 2, ... (longest last)."""
        seq = self.seq
        if seq.size < 2 or not hist:
            return []
        pos = np.flatnonzero(seq[:-1] == hist[-1])
        levels: list[np.ndarray] = []
        length = 1
        while pos.size:
            succ = pos + 1
            succ = succ[seq[succ] != BOS_ID]
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
        return np.unique(self.seq[np.concatenate(levels[-3:])])

    def prob(
        self, levels: list[np.ndarray], cand: np.ndarray, canonical: bool = False
    ) -> np.ndarray:
        """Witten-Bell probabilities of ``cand`` (canonical ids if ``canonical``)."""
        cand = np.asarray(cand, dtype=np.int64)
        seq = self._sequence(canonical)
        uniq, ucount, total = self.unigrams(canonical)
        p = np.full(cand.size, 1.0 / (uniq.size + 1))
        if total:
            idx = np.minimum(np.searchsorted(uniq, cand), uniq.size - 1)
            c = np.where(uniq[idx] == cand, ucount[idx], 0)
            t = uniq.size
            p = (c + t * p) / (total + t)
        for pos in levels:
            u, cnt = np.unique(seq[pos], return_counts=True)
            idx = np.minimum(np.searchsorted(u, cand), u.size - 1)
            c = np.where(u[idx] == cand, cnt[idx], 0)
            p = (c + u.size * p) / (pos.size + u.size)
        return p

    @staticmethod
    def weight(levels: list[np.ndarray]) -> float:
        """Mixture weight: grows with the length and support of the longest match."""
        if not levels:
            return LAMBDA_BY_MATCH[0]
        n = levels[-1].size
        return LAMBDA_BY_MATCH[min(len(levels), len(LAMBDA_BY_MATCH) - 1)] * n / (n + 0.5)
