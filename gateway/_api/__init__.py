"""Kestrel's REST API: Kestra's ``/api/v1`` paths, webhooks, health and metrics."""

from ._app import API_PREFIX, create_app
from ._auth import AuthMiddleware

__all__ = ["API_PREFIX", "AuthMiddleware", "create_app"]
