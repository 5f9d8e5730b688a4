"""Cut a completion where the request type wants it to end: the line, or the block."""

from __future__ import annotations

from codesuggest.gateway.postprocess.context import EditContext, indent_of, opens_block


def strip_fences(text: str, ctx: EditContext) -> str:
    """Chat models sometimes wrap code in markdown fences despite being told not to."""
    stripped = text.lstrip()
    if not stripped.startswith("```"):
        return text
    body = stripped.split("\n", 1)[1] if "\n" in stripped else ""
    end = body.find("```")
    return body[:end] if end != -1 else body


def cut_to_scope(text: str, ctx: EditContext) -> str:
    """Mid-line: the rest of the line, unless the line then opens a block (`:`, `{`...), which
    the block rule continues. Whole line: lines while they stay at or deeper than the cursor's
    indentation (a dedent ends the block). At most `max_lines` lines; generations are not cut."""
    if ctx.mode == "generation":
        return text
    lines = text.split("\n")
    cursor_line = ctx.cursor_line
    first_full = cursor_line + lines[0]
    base = indent_of(cursor_line) if ctx.mode == "whole_line" else indent_of(first_full)
    if ctx.mode == "mid_line" and not opens_block(first_full):
        return lines[0]
    deeper_only = opens_block(first_full)
    kept = [lines[0]]
    for line in lines[1:]:
        if len(kept) >= ctx.max_lines:
            break
        if line.strip():
            indent = indent_of(line)
            if indent < base:
                break
            if deeper_only and indent == base:
                if line.strip()[0] in ")]}":
                    kept.append(line)  # the bracket that closes the block just opened
                break
        kept.append(line)
    while len(kept) > 1 and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept)
