"""`redact_dsn`: a database address fit for logs and messages (no password anywhere)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_SECRET_PARAMS = frozenset({"password", "sslpassword"})


def redact_dsn(dsn: str) -> str:
    """The DSN with its password replaced by ``***``, in the user info and in the query.

    ``postgresql://u:p@h/db?password=p`` gives ``postgresql://u:***@h/db?password=***``;
    a text that does not parse as a URL gives ``<unparsable DSN>``.
    """
    try:
        parts = urlsplit(dsn)
        netloc = parts.netloc
        if "@" in netloc:
            user_info, host = netloc.rsplit("@", 1)
            if ":" in user_info:
                netloc = f"{user_info.split(':', 1)[0]}:***@{host}"
        query = urlencode(
            [
                (k, "***" if k.lower() in _SECRET_PARAMS else v)
                for k, v in parse_qsl(parts.query, keep_blank_values=True)
            ],
            safe="*",
        )
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:
        return "<unparsable DSN>"
