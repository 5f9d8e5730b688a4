"""The code of a chat model's answer: what is inside its first markdown code block.

Chat models are asked for the code in one fenced block; prose around it (or an answer with no
block at all) is never passed on as code. The reader works on streamed pieces, holding back
only what could still be the start of a fence.
"""

from __future__ import annotations

FENCE = "```"


def _held_back(text: str) -> int:
    """How many trailing characters of `text` could begin a fence."""
    for size in range(len(FENCE) - 1, 0, -1):
        if text.endswith(FENCE[:size]):
            return size
    return 0


class CodeBlock:
    def __init__(self) -> None:
        self.buffer = ""
        self.state = "before"  # before the block, inside it, after it

    def feed(self, piece: str) -> str:
        """The code that `piece` completes (possibly empty)."""
        if self.state == "after":
            return ""
        self.buffer += piece
        if self.state == "before":
            start = self.buffer.find(FENCE)
            if start == -1:
                self.buffer = self.buffer[len(self.buffer) - _held_back(self.buffer) :]
                return ""
            line_end = self.buffer.find("\n", start)
            if line_end == -1:
                return ""  # the fence's language tag is still coming
            self.buffer = self.buffer[line_end + 1 :]
            self.state = "inside"
        end = self.buffer.find(FENCE)
        if end != -1:
            code, self.buffer, self.state = self.buffer[:end], "", "after"
            return code
        keep = _held_back(self.buffer)
        code = self.buffer[: len(self.buffer) - keep]
        self.buffer = self.buffer[len(code) :]
        return code

    def finish(self) -> str:
        """The rest of a block the answer never closed (its generation stopped at the fence)."""
        code = self.buffer if self.state == "inside" else ""
        self.buffer, self.state = "", "after"
        return code


def code_of(answer: str) -> str:
    reader = CodeBlock()
    return reader.feed(answer) + reader.finish()
