"""The portal part."""
