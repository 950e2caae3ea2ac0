"""Hosting the emulator: over a real socket, or in-process as an httpx transport.

Owns: a quiet threaded wsgiref server on 127.0.0.1 (one thread per connection, so
concurrent requests, hangs and drops never block each other; a dropped request closes
its connection without writing a byte), `running_server` (a context manager for
tests), `serve_forever` (the `provisioner sandbox serve` command's loop), and
`SandboxTransport`, the in-process transport the CLI's `--sandbox` mode uses.

`SandboxTransport` is `httpx.WSGITransport` plus three translations: a dropped connection
raises `httpx.RemoteProtocolError`, a hang past the request's read timeout raises
`httpx.ReadTimeout`, as over a socket, and a refused connection `httpx.ConnectError`.
It is safe to use from many threads at once:
`WSGITransport.handle_request` keeps no state between calls (each call builds its own
environ and input stream), and the app and store are locked. Requests are handled on
the calling thread, so a thread pool gets real concurrency up to the store's lock.
(A plain `httpx.WSGITransport` would let the app's `ConnectionDropped` and
`RequestTimedOut` escape as they are, and could not time a hang out.)

Must not touch: anything but 127.0.0.1 by default, and stdout (except the one startup
line of `serve_forever`).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import signal
import socketserver
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import httpx

from provisioner.emulator.app import VapiEmulator
from provisioner.emulator.faults import (
    CLIENT_READ_TIMEOUT,
    ConnectionDropped,
    ConnectionRefused,
    FaultProfile,
    RequestTimedOut,
)
from provisioner.emulator.seed import seed_dashboard_objects
from provisioner.emulator.store import EmulatorStore, SandboxDataError
from provisioner.errors import ProvisionerError

__all__ = ["SandboxTransport", "make_sandbox_transport", "running_server", "serve_forever"]


class SandboxTransport(httpx.WSGITransport):
    """`httpx.WSGITransport` for the emulator: drops and hangs surface as httpx errors."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        read = timeout.get("read") if isinstance(timeout, dict) else None
        token = CLIENT_READ_TIMEOUT.set(float(read) if read is not None else None)
        try:
            return super().handle_request(request)
        except ConnectionRefused as exc:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request) from exc
        except ConnectionDropped as exc:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from exc
        except RequestTimedOut as exc:
            raise httpx.ReadTimeout(f"timed out ({exc})", request=request) from exc
        finally:
            CLIENT_READ_TIMEOUT.reset(token)


def make_sandbox_transport(
    store_path: Path | None,
    faults: FaultProfile | None = None,
    *,
    token: str | None = None,
) -> SandboxTransport:
    """An in-process transport to an emulator whose objects persist in `store_path`.

    Every process (CLI run) that points at the same file sees the same objects.

    Args:
        store_path: the JSON data file, in a folder of the sandbox's own (created, with
            a `.gitignore`, if need be); None = in memory.
        faults: faults to inject; none if None.
        token: the only API key accepted; None accepts any.
    """
    if store_path is not None:
        ignore_folder(store_path.parent)
    store = EmulatorStore(path=store_path)
    seed_dashboard_objects(store)
    app = VapiEmulator(store, token=token, faults=faults)
    # The emulator runs inside the user's command: a bug in it must show as the API's
    # 500, not as a traceback on the user's terminal.
    return SandboxTransport(app=app, wsgi_errors=_Discard())


def ignore_folder(folder: Path) -> None:
    """Create the sandbox's data folder with a `.gitignore` of `*`: its files hold what
    the emulated API holds (whatever a manifest sent), and must never be committed."""
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / ".gitignore"
    if not marker.exists():
        marker.write_text("# The Vapi sandbox's own data: never commit it.\n*\n", encoding="utf-8")


class _Discard(io.StringIO):
    """A text stream that keeps nothing."""

    def write(self, text: str) -> int:
        return len(text)


def with_twilio(
    vapi: WSGIApplication,
    twilio_store: Path | None,
    *,
    twilio_credentials: tuple[str, str] | None = None,
) -> WSGIApplication:
    """One server for both fakes: Twilio's paths (`/2010-04-01/...` for numbers,
    `/v1/PhoneNumbers...` for prices) go to the Twilio emulator, the rest to Vapi's; so
    `TWILIO_BASE_URL` and `TWILIO_PRICING_BASE_URL` can point at the sandbox too.
    `twilio_credentials` makes the Twilio side accept only that (user, secret) pair."""
    from provisioner.emulator.twilio import TwilioEmulator

    twilio = TwilioEmulator(store_path=twilio_store, credentials=twilio_credentials)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        path = str(environ.get("PATH_INFO", ""))
        if path.startswith(("/2010-04-01/", "/v1/PhoneNumbers")):
            return twilio(environ, start_response)
        return vapi(environ, start_response)

    return app


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a hung request must not keep the process alive
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def server_bind(self) -> None:
        # HTTPServer.server_bind would call socket.getfqdn(), a reverse DNS lookup.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)
        self.setup_environ()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client went away; nothing to report
        super().handle_error(request, client_address)


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _droppable(app: WSGIApplication) -> WSGIApplication:
    """Turn the app's `ConnectionDropped` into what wsgiref treats as a vanished client:
    it then returns without writing anything, and the socket is closed."""

    def wrapped(environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        try:
            return app(environ, start_response)
        except (ConnectionDropped, RequestTimedOut) as exc:
            raise ConnectionAbortedError(str(exc)) from exc
        except SandboxDataError as exc:
            # The data file was damaged while serving: say so, without a traceback.
            error = {"message": str(exc), "error": "Internal Server Error", "statusCode": 500}
            data = json.dumps(error).encode()
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
            start_response("500 Internal Server Error", headers)
            return [data]

    return wrapped


def _make_server(app: WSGIApplication, host: str, port: int) -> _Server:
    server = _Server((host, port), _Handler)
    server.set_app(_droppable(app))
    return server


@contextlib.contextmanager
def running_server(app: WSGIApplication, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve `app` on a real socket in a background thread; yields the base URL.

    Port 0 picks a free port. The server stops when the block ends (requests still
    hanging are abandoned).
    """
    server = _make_server(app, host, port)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://{host}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def serve_forever(
    host: str = "127.0.0.1",
    port: int = 8787,
    *,
    store_path: Path | None = None,
    faults: FaultProfile | None = None,
    token: str | None = None,
) -> None:
    """Serve the emulator until Ctrl-C or SIGTERM (the `sandbox serve` command).

    Prints one line, `Vapi sandbox listening on http://HOST:PORT`, once the socket is
    bound. The Twilio emulator answers on the same port (see `with_twilio`).

    Args:
        store_path: keep objects in this JSON file; None = in memory.
        faults: faults to inject; none if None.
        token: the only API key accepted; None accepts any.
    """
    store = EmulatorStore(path=store_path)
    seed_dashboard_objects(store)
    vapi = VapiEmulator(store, token=token, faults=faults)
    app = with_twilio(vapi, store_path.with_name("twilio.json") if store_path else None)
    try:
        server = _make_server(app, host, port)
    except OSError as exc:
        hint = ": another program is using it; choose another --port"
        reason = hint if exc.errno == errno.EADDRINUSE else f" ({exc.strerror or exc})"
        raise ProvisionerError(f"cannot listen on {host}:{port}{reason}") from None
    previous: Any = None
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        print(f"Vapi sandbox listening on http://{host}:{server.server_port}", flush=True)
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
