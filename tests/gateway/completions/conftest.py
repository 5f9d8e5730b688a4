"""Fixtures of the completion route tests (defined in routes_env.py)."""

from gateway.completions.routes_env import env, gw  # noqa: F401
