"""Through the CLI: a dead or wrong endpoint fails fast and names the URL and the setting
to check; a key that cannot be sent is refused up front and never shown (issue #10)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from provisioner.cli.main import cli

TOKEN = "goodtoken-7c1e9a"
TWILIO_SID = "AC" + "5e" * 16
NO_SECRETS = {
    "VAPI_TOKEN": None,
    "VAPI_API_KEY": None,
    "VAPI_BASE_URL": None,
    "TWILIO_ACCOUNT_SID": None,
    "TWILIO_AUTH_TOKEN": None,
    "TWILIO_BASE_URL": None,
    "TWILIO_PRICING_BASE_URL": None,
    "NO_COLOR": "1",
}


def plan(base_url: str, token: str = TOKEN, **env: str) -> tuple[Result, float]:
    started = time.monotonic()
    result = CliRunner().invoke(
        cli,
        ["plan", "examples/small.yaml"],
        env={**NO_SECRETS, "VAPI_TOKEN": token, "VAPI_BASE_URL": base_url, **env},
    )
    return result, time.monotonic() - started


def closed_port() -> int:
    with socket.socket() as probe:  # bound, then closed: nobody listens there
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextmanager
def silent_server() -> Iterator[str]:
    """A socket that accepts connections and never answers."""
    held: list[socket.socket] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(0.1)
        done = threading.Event()

        def accept() -> None:
            while not done.is_set():
                try:
                    held.append(listener.accept()[0])
                except OSError:
                    continue

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{listener.getsockname()[1]}"
        finally:
            done.set()
            thread.join()
            for conn in held:
                conn.close()


@contextmanager
def answering(status: int, headers: dict[str, str], body: bytes) -> Iterator[str]:
    """A web server that answers every request the same way (a login page, a proxy)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_closed_port_fails_within_5_seconds_naming_the_url(project: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result, took = plan(url)
    assert result.exit_code == 1
    assert took < 5
    assert f"cannot connect to {url}: connection refused; check VAPI_BASE_URL" in result.output
    assert "Traceback" not in result.output
    assert not (project / "state").exists() or not any((project / "state").glob("*.json"))


def test_a_hanging_server_fails_within_the_timeout(project: Path) -> None:
    with silent_server() as url:
        result, took = plan(url, PROVISIONER_HTTP_TIMEOUT="0.5")
    assert result.exit_code == 1
    # One wait of the timeout, and one more try (a hang may be a blip); never 8 of them.
    assert took < 3
    assert f"timed out after 0.5 s: GET {url}/assistant; check VAPI_BASE_URL" in result.output
    assert "(gave up after 2 attempts)" in result.output


@pytest.mark.parametrize("value", ["0", "-1", "nan", "soon"])
def test_a_bad_timeout_setting_is_refused(project: Path, value: str) -> None:
    result, _ = plan(f"http://127.0.0.1:{closed_port()}", PROVISIONER_HTTP_TIMEOUT=value)
    assert result.exit_code == 1
    assert "PROVISIONER_HTTP_TIMEOUT must be a number of seconds above 0" in result.output


def test_a_redirect_to_a_login_page_names_the_url_and_the_setting(project: Path) -> None:
    login = {"Location": "https://sso.example.com/login?next=%2Fassistant"}
    with answering(302, login, b"") as url:
        result, _ = plan(url)
    assert result.exit_code == 1
    assert (
        f"GET {url}/assistant was answered with a redirect (302) to "
        "https://sso.example.com/login, which an API does not do: check VAPI_BASE_URL"
    ) in result.output


def test_an_html_page_names_the_url_and_the_setting(project: Path) -> None:
    page = b"<!DOCTYPE html><html><body>Welcome</body></html>"
    with answering(200, {"Content-Type": "text/html; charset=utf-8"}, page) as url:
        result, _ = plan(url)
    assert result.exit_code == 1
    assert (
        f"GET {url}/assistant was answered 200 OK with an HTML page ({len(page)} bytes), "
        "not the API's JSON: check VAPI_BASE_URL"
    ) in result.output


@pytest.mark.parametrize(
    ("token", "words"),
    [
        ("goodtoken\n", "starts or ends with whitespace"),
        (" goodtoken", "starts or ends with whitespace"),
        ("tökén", "holds characters a key cannot have"),
        ("good\ttoken", "holds characters a key cannot have"),
    ],
)
def test_a_token_that_cannot_be_sent_is_refused_unshown(
    project: Path, token: str, words: str
) -> None:
    with answering(200, {"Content-Type": "application/json"}, b"[]") as url:
        result, _ = plan(url, token=token)
    assert result.exit_code == 1
    assert f"the Vapi API key (VAPI_TOKEN or VAPI_API_KEY) {words}" in result.output
    assert token.strip() not in result.output and "Bearer" not in result.output
    assert "Traceback" not in result.output
    assert not (project / "state").exists() or not any((project / "state").glob("*.json"))


# -- Twilio ------------------------------------------------------------------------------


@pytest.fixture
def numbers_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> click.Group:
    monkeypatch.chdir(tmp_path)
    return cli


def search(group: click.Group, **env: str) -> tuple[Result, float]:
    started = time.monotonic()
    result = CliRunner().invoke(
        group,
        ["numbers", "search", "--area-code", "415"],
        env={**NO_SECRETS, "TWILIO_ACCOUNT_SID": TWILIO_SID, **env},
    )
    return result, time.monotonic() - started


def test_twilio_at_a_closed_port_fails_fast_naming_the_setting(numbers_cli: click.Group) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result, took = search(numbers_cli, TWILIO_AUTH_TOKEN=TOKEN, TWILIO_BASE_URL=url)
    assert result.exit_code == 1 and took < 5
    assert f"cannot connect to {url}: connection refused; check TWILIO_BASE_URL" in result.output


@pytest.mark.parametrize("token", ["goodtoken\n", " goodtoken", "tökén"])
def test_a_twilio_token_that_cannot_be_sent_is_refused_unshown(
    numbers_cli: click.Group, token: str
) -> None:
    with answering(200, {"Content-Type": "application/json"}, b"{}") as url:
        result, _ = search(numbers_cli, TWILIO_AUTH_TOKEN=token, TWILIO_BASE_URL=url)
    assert result.exit_code == 1
    assert "the Twilio auth token" in result.output
    assert token.strip() not in result.output and "Basic" not in result.output
    assert "Traceback" not in result.output
