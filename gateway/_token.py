"""The API token a server uses when none is given: generated once, kept in the data dir.

As Jupyter does: the first ``kestrel server`` started without ``--api-token`` (and without
``--no-auth``) writes a random token to ``<data dir>/api-token`` (mode 0600) and every
later start reuses it. The ``kestrel`` CLI on the same machine reads that file when it
talks to a server on a loopback address, so local use needs no setup and no other local
user can call the API.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import secrets
import stat
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

_log = logging.getLogger("kestrel.auth")

DATA_DIR_ENV = "KESTREL_DATA_DIR"
_FILE_NAME = "api-token"


def data_dir(configured: Path | None = None) -> Path:
    """``configured``, else ``$KESTREL_DATA_DIR``, else the user data dir (``.../kestrel``)."""
    if configured is not None:
        return configured
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else Path(platformdirs.user_data_dir("kestrel"))


def token_path(directory: Path | None = None) -> Path:
    """Where the generated token is kept."""
    return data_dir(directory) / _FILE_NAME


def load_or_create_token(path: Path) -> tuple[str, bool]:
    """The token kept at ``path``, created (random, mode 0600) when there is none.

    Returns:
        ``(token, created)``.

    Raises:
        OSError: The file cannot be read or written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_private(path), False
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token + "\n")
    return token, True


def _read_private(path: Path) -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        _log.warning("%s was readable by others (mode %o): now 0600", path, mode)
        path.chmod(0o600)
    token = path.read_text(encoding="utf-8").strip()
    if not token:
        raise OSError(f"{path} is empty: delete it to get a new token")
    return token


def is_loopback_url(url: str) -> bool:
    """True for an ``http(s)://`` URL whose host is this machine (127.0.0.0/8, ::1, localhost)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def local_token(server_url: str, directory: Path | None = None) -> str | None:
    """For the CLI: the generated token, when the server is local and the file readable."""
    if not is_loopback_url(server_url):
        return None  # never send this machine's token elsewhere
    with contextlib.suppress(OSError, UnicodeDecodeError):
        token = token_path(directory).read_text(encoding="utf-8").strip()
        return token or None
    return None
