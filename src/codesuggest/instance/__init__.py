"""The instance part."""
