"""Kestrel actors package."""
