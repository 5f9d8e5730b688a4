"""Completion and generation (docs/contracts.md sections 5, 6): the service behind
`gateway/routes/completions.py`."""
