"""Post-processing shared by every provider (see pipeline.STAGES for the order)."""

from codesuggest.gateway.postprocess.context import EditContext, Mode, mode_for
from codesuggest.gateway.postprocess.pipeline import STAGES, Processed, postprocess
from codesuggest.gateway.postprocess.stream import StreamingPostprocessor

__all__ = [
    "STAGES",
    "EditContext",
    "Mode",
    "Processed",
    "StreamingPostprocessor",
    "mode_for",
    "postprocess",
]
