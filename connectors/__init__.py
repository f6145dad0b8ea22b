"""Kestrel connectors package."""
