"""codesuggest: AI code completions served straight from the AI gateway to the IDE."""

__version__ = "0.1.0"
