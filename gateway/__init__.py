"""Kestrel gateway package."""
