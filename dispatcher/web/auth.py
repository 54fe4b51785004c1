"""The dashboard's access token and the checks every request goes through (no web framework here).

Every request needs the token: as ``Authorization: Bearer TOKEN``, as the ``grf_token`` cookie the
page sets after the first visit to ``/?token=TOKEN``, or as that query parameter. A POST (cancel,
resume) also needs an ``Origin`` (or ``Referer``) of this very server, or an Authorization header
(a script, not a browser), so another web page cannot make the user's browser press a button.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from urllib.parse import urlsplit

from ..jobs import make_private_dir
from ..spec import SpecError

COOKIE = "grf_token"


def new_token() -> str:
    return secrets.token_urlsafe(24)


def load_token(path: str | None) -> str:
    """The token from ``path`` (created there, mode 0600, when missing), or a fresh one."""
    if not path:
        return new_token()
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.exists(path):
        make_private_dir(os.path.dirname(path))
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(new_token() + "\n")
    if os.stat(path).st_mode & 0o077:
        raise SpecError(f"token file {path} is readable by other users (chmod 600 it)")
    with open(path, encoding="utf-8") as handle:
        token = handle.read().strip()
    if len(token) < 16:
        raise SpecError(f"token file {path} holds no token of 16 or more characters")
    return token


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_matches(expected: str, given: str | None) -> bool:
    return given is not None and given != "" and hmac.compare_digest(expected.encode(), given.encode())


def request_token(headers: dict[str, str], cookies: dict[str, str], query: dict[str, str]) -> str | None:
    """The token a request carries, from the header, the cookie or the query (in that order)."""
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return cookies.get(COOKIE) or query.get("token")


def same_origin(headers: dict[str, str], scheme: str) -> bool:
    """A state-changing request from this server's own page, or from a non-browser client with a header."""
    host = headers.get("host", "")
    if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        return False
    origin = headers.get("origin") or headers.get("referer")
    if origin:
        parts = urlsplit(origin)
        return parts.scheme == scheme and parts.netloc == host
    return headers.get("authorization", "").lower().startswith("bearer ")
