"""Reading answers and naming failures, for the HTTP layer and the clients (pure).

Owns: the final `Answer` of a request, JSON decoding, short quotes of bodies, the words
for a request that got no usable answer (naming the URL and the setting to check, never
a header value), and the check that refuses a credential HTTP cannot carry.

Must not touch: the network, the clock, the environment.
"""

from __future__ import annotations

import http
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from provisioner.errors import ProvisionerError, RemoteError
from provisioner.remote.retry import parse_retry_after

__all__ = [
    "Answer",
    "CredentialError",
    "check_credential",
    "clip",
    "decode",
    "is_html",
    "phrase",
    "shape_error",
    "snippet",
    "transport_message",
]

# How much of a non-JSON body goes into a message.
_SNIPPET = 200
HIDDEN = "(not shown)"


class CredentialError(ProvisionerError, ValueError):
    """A key or token that cannot be sent as it is (whitespace, control or non-ASCII
    characters). The message names the credential, never its value."""


def check_credential(value: str, what: str) -> None:
    """Refuse a credential HTTP cannot carry, before anything is sent.

    A trailing newline is the usual cause (a secret stored from `echo`); it is refused
    rather than stripped, so the key in use is exactly the one configured.
    """
    if not value:
        raise CredentialError(f"{what} is empty")
    if value != value.strip():
        raise CredentialError(
            f"{what} starts or ends with whitespace (a trailing newline?); "
            "remove it (the value itself is never shown)"
        )
    if not value.isascii() or not value.isprintable():
        raise CredentialError(
            f"{what} holds characters a key cannot have (control or non-ASCII); "
            "check it (the value itself is never shown)"
        )


@dataclass(frozen=True, slots=True)
class Answer:
    """The final answer to a request (any status: callers decide what 404 means)."""

    response: httpx.Response
    path: str
    attempts: int
    # An earlier attempt may have been carried out by the server although its answer
    # was lost or an error (so a DELETE answered 404 now may be our own doing).
    maybe_applied: bool


def decode(response: httpx.Response) -> Any:
    """The JSON body, None when empty; ValueError when it is not JSON."""
    if not response.content.strip():
        return None
    return json.loads(response.content)


def body_of(response: httpx.Response) -> Any:
    try:
        return decode(response)
    except ValueError:
        return response.text


def is_html(response: httpx.Response) -> bool:
    kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if kind in ("text/html", "application/xhtml+xml"):
        return True
    head = response.content[:64].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


def snippet(response: httpx.Response) -> str:
    """A short quote of a non-JSON body (markup is only named)."""
    text = response.text.strip()
    if not text:
        return "(empty body)"
    if text.startswith("<"):
        kind = response.headers.get("Content-Type", "markup").split(";")[0]
        return f"({kind} page of {len(response.content)} bytes)"
    return clip(text)


def clip(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= _SNIPPET else text[: _SNIPPET - 3] + "..."


def phrase(status: int, fallback: str = "") -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return fallback


def shape_error(method: str, answer: Answer, expected: str, who: str = "") -> RemoteError:
    """An answer that is not what the API promises (`who`: "Twilio's " or "")."""
    response = answer.response
    return RemoteError(
        f"{who}{response.status_code} answer is not {expected}: {snippet(response)}",
        method=method,
        path=answer.path,
        status=response.status_code,
        body=response.text,
    )


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    return parse_retry_after(value, datetime.now(UTC)) if value is not None else None


def _url_of(exc: Exception, url: str) -> str:
    if isinstance(exc, httpx.RequestError):
        try:
            return str(exc.request.url)
        except RuntimeError:  # the error was raised without a request attached
            pass
    return url


def without_query(url: str) -> str:
    return url.split("?", 1)[0]


def _origin(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return url
    if not parsed.scheme or not parsed.host:
        return url
    port = f":{parsed.port}" if parsed.port is not None else ""
    return f"{parsed.scheme}://{parsed.host}{port}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "no limit"
    return f"{value:g} s"


_CONNECT_REASONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("refused",), "connection refused"),
    (
        (
            "name or service not known",
            "nodename nor servname",
            "getaddrinfo",
            "name resolution",
            "no address associated",
        ),
        "host not found",
    ),
    (("network is unreachable",), "network unreachable"),
    (("no route to host",), "no route to host"),
    (("timed out",), "timed out"),
    (("reset by peer",), "connection reset"),
)


def _connect_reason(text: str) -> str:
    low = text.lower()
    for needles, reason in _CONNECT_REASONS:
        if any(n in low for n in needles):
            return reason
    if "ssl" in low or "certificate" in low or "tls" in low:
        return f"TLS error ({text})"
    return text or "connection failed"


# What a failure is called, first match wins: (errors, message, short reason). The fields
# are filled by `transport_message`; `{hint}` names the setting to check.
_FAILURES: tuple[tuple[tuple[type[Exception], ...], str, str], ...] = (
    (
        (httpx.ConnectTimeout,),
        "cannot connect to {origin}: timed out after {connect}{hint}",
        "timeout",
    ),
    (
        (httpx.PoolTimeout,),
        "timed out after {pool} waiting for a free connection: {method} {url}",
        "timeout",
    ),
    ((httpx.WriteTimeout,), "timed out after {write} sending: {method} {url}", "timeout"),
    ((httpx.TimeoutException,), "timed out after {read}: {method} {url}{hint}", "timeout"),
    ((httpx.ConnectError,), "cannot connect to {origin}: {why}{hint}", "cannot connect"),
    (
        (httpx.RemoteProtocolError,),
        "connection dropped before a complete answer: {method} {url} ({detail})",
        "connection dropped",
    ),
    # httpx quotes the offending header value in these: never show the error's words.
    (
        (httpx.LocalProtocolError,),
        "the request could not be written: {method} {url}",
        "request failed",
    ),
    ((httpx.NetworkError,), "connection error: {method} {url} ({detail})", "connection error"),
    (
        (httpx.UnsupportedProtocol, httpx.InvalidURL),
        "invalid URL {url}: {detail}{hint}",
        "invalid URL",
    ),
)


def transport_message(
    method: str, url: str, exc: Exception, setting: str, timeout: httpx.Timeout, detail: str
) -> tuple[str, str]:
    """(message, short reason) for a request that got no usable answer to `url`.

    `detail` is the error's own words with every credential already removed (httpx quotes
    header values in some errors).
    """
    url = without_query(_url_of(exc, url))
    fields = {
        "method": method,
        "url": url,
        "origin": _origin(url),
        "hint": f"; check {setting}",
        "detail": detail,
        "why": _connect_reason(detail),
        "connect": _seconds(timeout.connect),
        "pool": _seconds(timeout.pool),
        "write": _seconds(timeout.write),
        "read": _seconds(timeout.read),
    }
    for errors, message, reason in _FAILURES:
        if isinstance(exc, errors):
            return message.format(**fields), reason
    return "request failed: {method} {url} ({detail})".format(**fields), "request failed"
