"""Plumbing every service shares: storage, logging, sealing secrets at rest, serving.

Not token code (that is `codesuggest.tokens`) and no service logic: services still never import
each other.
"""
