"""Post-processing for a stream: release text line by line once it is known to survive.

Only whole lines go out, through the line-safe stages (fences, scope, whitespace); the last
line break is held back until more code follows it. A completion that is still only comments
is held until real code appears. When the scope rule ends the completion early, `stopped`
turns true and the caller stops the model. `finish()` runs the full pipeline; the final `done`
event carries that text, which the streamed chunks are a prefix of in all but rare cases.
"""

from __future__ import annotations

from codesuggest.gateway.postprocess.cleanup import strip_trailing_whitespace
from codesuggest.gateway.postprocess.context import EditContext
from codesuggest.gateway.postprocess.pipeline import Processed, postprocess
from codesuggest.gateway.postprocess.scope import cut_to_scope, strip_fences


class StreamingPostprocessor:
    def __init__(self, ctx: EditContext) -> None:
        self.ctx = ctx
        self.buffer = ""
        self.emitted = ""
        self.stopped = False

    def feed(self, chunk: str) -> str:
        """Add model output; return the text that may be sent now."""
        if self.stopped:
            return ""
        self.buffer += chunk
        cut = self.buffer.rfind("\n")
        if cut == -1:
            return ""
        unwrapped = strip_fences(self.buffer[:cut], self.ctx)
        scoped = cut_to_scope(unwrapped, self.ctx)
        if len(scoped.rstrip()) < len(unwrapped.rstrip()):
            self.stopped = True  # the scope ended inside what we have: stop the model
        safe = strip_trailing_whitespace(scoped, self.ctx)
        if not self._has_code(safe):
            return ""
        return self._advance(safe)

    def finish(self) -> tuple[str, Processed]:
        """The remaining text to send, and the final result of the full pipeline."""
        final = postprocess(self.buffer, self.ctx)
        return self._advance(final.text), final

    def _advance(self, text: str) -> str:
        if not text.startswith(self.emitted):
            return ""
        delta = text[len(self.emitted) :]
        self.emitted = text
        return delta

    def _has_code(self, text: str) -> bool:
        mark = self.ctx.line_comment
        lines = [line.strip() for line in text.split("\n") if line.strip()]
        if not lines:
            return False
        return (
            self.ctx.mode == "generation"
            or not mark
            or any(not line.startswith(mark) for line in lines)
        )
