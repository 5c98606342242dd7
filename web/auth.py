"""Who is asking: an API key, sent the way A1111 clients and scripts send it, turned into the core's web actor.

A key is accepted as ``Authorization: Bearer <key>``, as the password of HTTP Basic auth (A1111's ``--api-auth``;
the user name is ignored), or, for the web UI in a browser, as the ``imaginebot_key`` cookie the sign-in sets
(HttpOnly, SameSite=Strict). A cookie alone never authorises a change: a request other than GET/HEAD that relies on
the cookie must also carry the ``X-Imaginebot-Request`` header, which a page of another site cannot add without a
CORS permission this server never gives (so a forged form post gets 401).
"""

from __future__ import annotations

import base64
import binascii

from fastapi import Request

from bot.core import Actor
from web.errors import ApiError

COOKIE = "imaginebot_key"
CSRF_HEADER = "x-imaginebot-request"
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="imaginebot", Basic realm="imaginebot"'}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def presented_key(request: Request) -> str | None:
    """The key a request carries, from the header first, then the cookie (see the module's note); None if none."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and value.strip():
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _user, _, password = decoded.partition(":")
        return password or None
    cookie = request.cookies.get(COOKIE)
    if cookie and (request.method in SAFE_METHODS or request.headers.get(CSRF_HEADER)):
        return cookie
    return None


def unauthorized(message: str = "") -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        message or "sign in with an API key: Authorization: Bearer <key> (make one with /apikey in Discord)",
        headers=CHALLENGE,
    )


async def optional_actor(request: Request) -> Actor | None:
    """The actor of the request's key; None without a key. A key that is not valid is refused (401)."""
    key = presented_key(request)
    if key is None:
        return None
    identity = await request.app.state.service.keys.authenticate(key)
    if identity is None:
        raise unauthorized("this API key is not valid (it may have been revoked); make a new one with /apikey")
    return identity.actor()


async def current_actor(request: Request) -> Actor:
    """The actor of the request's key; 401 without a valid one."""
    actor = await optional_actor(request)
    if actor is None:
        raise unauthorized()
    return actor
