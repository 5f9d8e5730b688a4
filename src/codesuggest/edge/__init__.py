"""The edge part."""
