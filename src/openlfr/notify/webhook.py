"""Webhooks: an HTTP(S) POST of the alert's JSON body, signed with HMAC-SHA256.

The signature scheme (``docs/alerts.md`` shows a receiver checking it)::

    X-OpenLFR-Timestamp: 1764640200                  (Unix seconds when this attempt was made)
    X-OpenLFR-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>
    X-OpenLFR-Delivery:  <id, the same for every retry of one message>
    X-OpenLFR-Event:     new | update

The timestamp is inside the signed bytes, so a receiver that refuses a timestamp more than a
few minutes old (``verify`` does, by default five) cannot be fed a recorded request again
later; one that also remembers the delivery ids it has seen drops retried duplicates.

There is one signing secret per installation, like the database URL: ``OPENLFR_WEBHOOK_SECRET``
or the file ``webhook-secret`` in the data directory (readable by its owner only). It is never
kept in the store, so a copy of the database cannot forge alerts, and never shown by the API,
the audit log or the logs.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from openlfr.config import data_dir
from openlfr.errors import OpenLFRError
from openlfr.notify.dispatcher import Message, Refused, RetryLater

SECRET_ENV = "OPENLFR_WEBHOOK_SECRET"
SECRET_FILE = "webhook-secret"
MIN_SECRET_CHARS = 16
TIMEOUT_S = 5.0  # per attempt: connecting, and each read


class PushConfigError(OpenLFRError):
    """A push endpoint or its secret is missing or unusable."""


def secret_path() -> Path:
    return data_dir() / SECRET_FILE


def webhook_secret() -> bytes:
    """The installation's signing secret, from ``OPENLFR_WEBHOOK_SECRET`` or the data
    directory's ``webhook-secret`` file; refuses a missing or short one, and a file that
    others than its owner may read."""
    text = os.environ.get(SECRET_ENV)
    where = SECRET_ENV
    if not text:
        path = secret_path()
        if not path.is_file():
            raise PushConfigError(
                f"webhooks are signed, and no secret is set: set {SECRET_ENV}, or write one to "
                f"{path} readable only by its owner (umask 077; openssl rand -hex 32 > {path})"
            )
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise PushConfigError(f"{path} may be read by others: chmod 600 {path}")
        text, where = path.read_text(), str(path)
    text = text.strip()
    if len(text) < MIN_SECRET_CHARS:
        raise PushConfigError(
            f"the webhook secret in {where} is too short: use at least {MIN_SECRET_CHARS} "
            "random characters (openssl rand -hex 32)"
        )
    return text.encode("utf-8")


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-OpenLFR-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(
    secret: bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> bool:
    """What a receiver checks: the signature over this body and timestamp, and a timestamp
    within ``tolerance_s`` of ``now``. ``headers`` is looked up case-insensitively."""
    lower = {k.lower(): v for k, v in headers.items()}
    timestamp = lower.get("x-openlfr-timestamp", "")
    signature = lower.get("x-openlfr-signature", "")
    if not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def parse_endpoint(
    url: str, what: str, schemes: tuple[str, ...], form: str, no_credentials: str
) -> SplitResult:
    """A receiver's URL split, refused with the reason unless it is one of ``schemes`` with a
    host, a valid port and no credentials (``no_credentials`` says where they go instead)."""
    if any(c.isspace() or not c.isprintable() for c in url):
        raise PushConfigError(f"{what} has no spaces or control characters in it")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (an out-of-range port raises here)
    except ValueError as exc:
        raise PushConfigError(f"not a usable {what}: {exc}") from exc
    if parts.scheme not in schemes or not parts.hostname:
        raise PushConfigError(f"{what} must be {form}")
    if parts.username or parts.password:
        raise PushConfigError(f"no credentials in {what}: {no_credentials}")
    return parts


def check_url(url: str) -> str:
    """A webhook URL as stored: http or https, a host, no credentials in it."""
    url = url.strip()
    parse_endpoint(
        url,
        "a webhook URL",
        ("http", "https"),
        "http:// or https:// with a host",
        "the requests are signed (see docs/alerts.md)",
    )
    return url


def endpoint_label(url: str) -> str:
    """Where it goes, as the audit, the API and the logs show it: without the query, which
    some receivers use for a token of their own."""
    parts = urlsplit(url)
    return parts._replace(query="", fragment="").geturl() + ("?..." if parts.query else "")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is not followed: it could carry a signed alert somewhere else."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None


class WebhookSink:
    """POSTs each message to ``url``, signed with ``secret``."""

    kind = "webhook"

    def __init__(self, url: str, secret: bytes, *, timeout_s: float = TIMEOUT_S) -> None:
        self.url, self._secret, self.timeout_s = check_url(url), secret, timeout_s
        self.endpoint = endpoint_label(self.url)
        self._opener = urllib.request.build_opener(_NoRedirect())

    def send(self, message: Message) -> None:
        timestamp = str(int(time.time()))
        request = urllib.request.Request(
            self.url,
            data=message.body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "OpenLFR-webhook/1",
                "X-OpenLFR-Event": message.kind,
                "X-OpenLFR-Delivery": message.delivery_id,
                "X-OpenLFR-Timestamp": timestamp,
                "X-OpenLFR-Signature": sign(self._secret, timestamp, message.body),
            },
        )
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                response.read(65536)  # the answer is not used; reading lets the connection end
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code in (408, 425, 429) or exc.code >= 500:
                raise RetryLater(f"HTTP {exc.code}") from None
            raise Refused(f"HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:  # refused, unreachable, timed out
            reason = getattr(exc, "reason", exc)
            raise RetryLater(f"{type(reason).__name__}: {reason}") from None

    def close(self) -> None:
        pass
