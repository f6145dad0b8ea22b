"""amqtt auth plugin for the test broker, loaded by the amqtt subprocess (not by pytest).

amqtt's own AnonymousAuthPlugin flags every session it lets in as anonymous, and amqtt
neither queues QoS 1/2 messages for an offline anonymous session nor keeps it after a
disconnect: ``clean_session=False`` would silently behave like a clean session. This
plugin admits every client (with or without credentials) without that flag, so the test
broker behaves like mosquitto with ``allow_anonymous true``.

The broker imports it as the top-level module ``_amqtt_auth`` (its directory is put on
the subprocess' PYTHONPATH), which keeps ``tests.servers`` itself out of the broker.
"""

from __future__ import annotations

from dataclasses import dataclass

from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session


class AcceptAllAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt is untyped
    """Authenticate every client; never mark the session anonymous."""

    @dataclass
    class Config:
        """This plugin has no options."""

    async def authenticate(self, *, session: Session) -> bool | None:
        """Let the client in."""
        return True
