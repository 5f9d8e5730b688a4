"""Completion and generation routes (CONTRACTS.md sections 5 and 6); see routes.build_router."""
