"""Renderers and clients shared by several targets (owned by none of them)."""
