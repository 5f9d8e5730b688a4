"""The gateway part."""
