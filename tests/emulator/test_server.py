"""The emulator over a real socket: concurrency, hangs, the serve entry point."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from provisioner.emulator import VapiEmulator, make_sandbox_transport, running_server
from tests.emulator.conftest import AUTH, assistant_body

REPO = Path(__file__).resolve().parents[2]


def test_concurrent_requests_over_a_socket(app: VapiEmulator, served: str) -> None:
    with httpx.Client(base_url=served, headers=AUTH) as c:

        def make(i: int) -> int:
            return c.post("/assistant", json=assistant_body(f"a{i}")).status_code

        with ThreadPoolExecutor(10) as pool:
            assert set(pool.map(make, range(40))) == {201}
        assert len(c.get("/assistant", params={"limit": 1000}).json()) == 40


def test_a_hanging_request_does_not_block_others(app: VapiEmulator) -> None:
    release = threading.Event()
    entered = threading.Event()

    def slow_app(environ: dict[str, object], start_response: object) -> object:
        if environ.get("PATH_INFO") == "/slow":
            entered.set()
            release.wait(5)
        return app(environ, start_response)  # type: ignore[arg-type]

    with running_server(slow_app) as url:  # type: ignore[arg-type]
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(httpx.get, f"{url}/slow", headers=AUTH)
            assert entered.wait(5)
            assert httpx.get(f"{url}/assistant", headers=AUTH).status_code == 200
            release.set()
            assert slow.result(5).status_code == 404


def test_in_process_transport_from_a_thread_pool(tmp_path: Path) -> None:
    """One transport shared by many threads (as the apply engine does)."""
    transport = make_sandbox_transport(tmp_path / "vapi.json")
    with httpx.Client(transport=transport, base_url="http://s", headers=AUTH) as c:

        def make(i: int) -> int:
            return c.post("/assistant", json=assistant_body(f"a{i}")).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(make, range(40))) == {201}
        assert len(c.get("/assistant").json()) == 40


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_forever_prints_one_line_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = _free_port()
    data = tmp_path / "vapi.json"
    code = (
        "from pathlib import Path\n"
        "from provisioner.emulator import FaultProfile, serve_forever\n"
        f"serve_forever('127.0.0.1', {port}, store_path=Path({str(data)!r}),"
        " faults=FaultProfile.parse('latency_ms=1'), token='k')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == f"Vapi sandbox listening on http://127.0.0.1:{port}"
        url = f"http://127.0.0.1:{port}"
        r = httpx.post(
            f"{url}/assistant", json={"name": "x"}, headers={"Authorization": "Bearer k"}
        )
        assert r.status_code == 201
        assert httpx.get(f"{url}/assistant", headers=AUTH).status_code == 401
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert out == "" and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert '"name":"x"' in data.read_text()


def test_sigterm_also_stops_cleanly() -> None:
    port = _free_port()
    code = f"from provisioner.emulator import serve_forever\nserve_forever('127.0.0.1', {port})\n"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(b"Vapi sandbox listening")
        start = time.monotonic()
        proc.terminate()
        proc.communicate(timeout=10)
        assert proc.returncode == 0 and time.monotonic() - start < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _wait_until_held(url: str) -> None:
    deadline = time.monotonic() + 5
    while httpx.get(f"{url}/__emulator/stats").json()["held"] == 0:
        assert time.monotonic() < deadline, "the request was never held"
        time.sleep(0.01)


def test_hold_after_processing_then_release(app: VapiEmulator, served: str) -> None:
    """`PUT /__emulator/hold` (used by the kill tests): the request is done, then waits."""
    httpx.put(f"{served}/__emulator/hold", json={"after": 1, "phase": "after"})
    with httpx.Client(base_url=served, headers=AUTH) as c, ThreadPoolExecutor(1) as pool:
        assert c.get("/assistant").status_code == 200  # request 1 passes
        held = pool.submit(c.post, "/assistant", json=assistant_body())
        _wait_until_held(served)
        assert app.store.counts()["assistant"] == 1  # processed before the hold
        httpx.post(f"{served}/__emulator/release")
        assert held.result(5).status_code == 201
    assert httpx.get(f"{served}/__emulator/stats").json()["held"] == 0


def test_hold_before_processing_abandons_the_request(app: VapiEmulator, served: str) -> None:
    httpx.put(f"{served}/__emulator/hold", json={"after": 0, "phase": "before"})
    with httpx.Client(base_url=served, headers=AUTH) as c, ThreadPoolExecutor(1) as pool:
        held = pool.submit(c.post, "/assistant", json=assistant_body())
        _wait_until_held(served)
        httpx.post(f"{served}/__emulator/release")
        with pytest.raises(httpx.RemoteProtocolError):
            held.result(5)
    assert app.store.counts()["assistant"] == 0
    bad = httpx.put(f"{served}/__emulator/hold", json={"after": -1})
    assert bad.status_code == 400


# -- a damaged data file, a busy port ---------------------------------------------------------


def _serve_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "provisioner", "sandbox", "serve", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )


def test_serve_refuses_a_corrupt_data_file_at_startup(tmp_path: Path) -> None:
    data = tmp_path / "corrupt.json"
    data.write_text("{bad")
    result = _serve_cli("--port", str(_free_port()), "--data", str(data))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{data} is not a usable sandbox data file" in result.stderr
    assert "delete it to reset the sandbox" in result.stderr
    assert result.stdout == ""  # never said it was listening


def test_serve_on_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _serve_cli("--port", str(port))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"cannot listen on 127.0.0.1:{port}: another program is using it" in result.stderr


def test_data_file_damaged_while_serving_answers_500_saying_so(tmp_path: Path) -> None:
    from provisioner.emulator import EmulatorStore
    from provisioner.emulator.server import with_twilio

    data = tmp_path / "vapi.json"
    app = VapiEmulator(EmulatorStore(path=data))
    with running_server(with_twilio(app, None)) as url:
        assert httpx.post(f"{url}/assistant", json={"name": "a"}, headers=AUTH).status_code == 201
        data.write_text("[]")
        r = httpx.get(f"{url}/assistant", headers=AUTH)
    assert r.status_code == 500
    assert "is not a usable sandbox data file" in r.json()["message"]
