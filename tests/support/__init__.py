"""Helpers shared by the test suite (importable as `support`, see pytest `pythonpath`)."""
