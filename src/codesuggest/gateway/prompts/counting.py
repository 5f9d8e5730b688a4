"""Token counting by approximation: 1 token ~ 3.5 characters of source code.

Real tokenizers (BPE) average 3-4 characters per token on code; the budget only needs to keep a
prompt under the model's window, so a constant ratio is close enough and costs nothing. Cuts
are then moved to a line (or word) boundary so no identifier or marker is ever split.
"""

from __future__ import annotations

import math

CHARS_PER_TOKEN = 3.5


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def chars_for(tokens: int) -> int:
    return max(0, int(tokens * CHARS_PER_TOKEN))
