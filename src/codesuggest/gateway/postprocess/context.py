"""What post-processing needs to know about the edit: the text around the cursor and the mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Mode = Literal["mid_line", "whole_line", "generation"]

_OPENERS = (":", "{", "(", "[", "=>", "->", " do", "\\")


@dataclass(frozen=True, slots=True)
class EditContext:
    prefix: str
    suffix: str
    line_comment: str | None
    mode: Mode
    max_lines: int = 20

    @property
    def cursor_line(self) -> str:
        """The text of the cursor's line before the cursor."""
        return self.prefix[self.prefix.rfind("\n") + 1 :]

    @property
    def rest_of_line(self) -> str:
        """The text of the cursor's line after the cursor."""
        end = self.suffix.find("\n")
        return self.suffix if end == -1 else self.suffix[:end]


def mode_for(prefix: str, *, generation: bool) -> Mode:
    """Generation; mid-line when the cursor line already has code before the cursor; else a
    whole line (or block) starting at the cursor's indentation."""
    if generation:
        return "generation"
    return "mid_line" if prefix[prefix.rfind("\n") + 1 :].strip() else "whole_line"


def opens_block(line: str) -> bool:
    return line.rstrip().endswith(_OPENERS)


def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))
