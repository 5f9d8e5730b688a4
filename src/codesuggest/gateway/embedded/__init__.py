"""Embedded completion engine: a Kneser-Ney token model of the Python stdlib.

Basic offline completion with nothing to download; see ``docs/embedded-engine.md``.
"""

from .engine import EmbeddedEngine

__all__ = ["EmbeddedEngine"]
