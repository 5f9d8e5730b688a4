"""Token counting by approximation: 1 token ~ 3.5 characters of source code.

Real tokenizers (BPE) average 3-4 characters per token on code; the budget only needs to keep a
prompt under the model's window, so a constant ratio is close enough and costs nothing. Cuts
are then moved to a line (or word) boundary so no identifier or marker is ever split. A
provider with the model's own tokenizer (local) measures the rendered prompt and, when it is
over, builds it again with the ratio it measured (see PromptBudget.chars_per_token).
"""

from __future__ import annotations

import math

CHARS_PER_TOKEN = 3.5


def estimate_tokens(text: str, chars_per_token: float = CHARS_PER_TOKEN) -> int:
    return math.ceil(len(text) / chars_per_token)


def chars_for(tokens: int, chars_per_token: float = CHARS_PER_TOKEN) -> int:
    return max(0, int(tokens * chars_per_token))
