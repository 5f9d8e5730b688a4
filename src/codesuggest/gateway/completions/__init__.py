"""Completion and generation routes (docs/contracts.md sections 5, 6); see routes.build_router."""
