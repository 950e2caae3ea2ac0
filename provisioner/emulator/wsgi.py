"""The emulator's HTTP plumbing: a request read from the WSGI environment, an answer (or
an error raised as `Fail` from anywhere in a handler) written back, NestJS error bodies."""

from __future__ import annotations

import http
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl
from wsgiref.types import StartResponse, WSGIEnvironment


class Fail(Exception):
    """An error answer, raised from anywhere inside a handler."""

    def __init__(
        self, status: int, message: str | list[str], headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = list(headers)


@dataclass(slots=True)
class Answer:
    status: int
    body: Any
    headers: list[tuple[str, str]] = field(default_factory=list)
    text: bool = False  # body is a plain-text string, not JSON


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: list[tuple[str, str]]
    authorization: str
    body: bytes

    @property
    def params(self) -> dict[str, str]:
        return dict(self.query)  # the last value of a repeated parameter wins


def nest_error(status: int, message: str | list[str]) -> dict[str, Any]:
    if status >= 500:
        return {"statusCode": status, "message": message}
    return {"message": message, "error": http.HTTPStatus(status).phrase, "statusCode": status}


def read_request(environ: WSGIEnvironment) -> Request:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    # Read the whole body first: closing a connection with unread input resets it.
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    raw_path = environ.get("PATH_INFO") or "/"
    # PEP 3333 hands PATH_INFO over as latin-1 decoded bytes.
    path = raw_path.encode("latin-1").decode("utf-8", "replace")
    query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    return Request(
        method=str(environ.get("REQUEST_METHOD", "GET")).upper(),
        path=path,
        query=query,
        authorization=str(environ.get("HTTP_AUTHORIZATION", "")),
        body=body,
    )


def respond(answer: Answer, start_response: StartResponse) -> list[bytes]:
    if answer.text:
        data = str(answer.body).encode("utf-8")
        content_type = "text/plain; charset=utf-8"
    else:
        data = json.dumps(answer.body, ensure_ascii=False).encode("utf-8")
        content_type = "application/json; charset=utf-8"
    status = http.HTTPStatus(answer.status)
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(data))),
        *answer.headers,
    ]
    start_response(f"{status.value} {status.phrase}", headers)
    return [data]


def gateway_error(status: int) -> Answer:
    """A 5xx as the API's front answers it: NestJS JSON for 500, the proxy's text else."""
    if status == 500:
        return Answer(500, nest_error(500, "Internal server error"))
    return Answer(status, f"error code: {status}", text=True)


def json_body(request: Request) -> dict[str, Any]:
    if not request.body.strip():
        return {}
    try:
        body = json.loads(request.body)
    except ValueError as exc:
        pos = getattr(exc, "pos", 0)
        raise Fail(400, f"Unexpected token in JSON at position {pos}") from None
    if not isinstance(body, dict):
        raise Fail(400, ["body must be an object"])
    return body
