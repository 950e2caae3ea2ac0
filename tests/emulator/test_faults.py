"""Each fault of a `FaultProfile` is observable, and a seed replays the same faults."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from provisioner.emulator import FaultProfile, SandboxTransport, VapiEmulator, running_server
from provisioner.emulator.faults import FaultInjector
from tests.emulator.conftest import AUTH, TOKEN, assistant_body

# -- parsing ------------------------------------------------------------------------------


def test_parse_compact_form() -> None:
    profile = FaultProfile.parse("rps=5,p429=0.2,p5xx=0.1,latency_ms=50,p_ambiguous=0.1,seed=7")
    assert profile == FaultProfile(
        rate_limit_rps=5.0,
        p_429=0.2,
        p_5xx=0.1,
        latency_ms=50.0,
        p_ambiguous_post=0.1,
        seed=7,
    )
    assert FaultProfile.parse(" p_hang=0.5, hang_seconds=2, p_drop=0.1 ").hang_seconds == 2.0
    assert FaultProfile.parse("reject=A|B c").reject_create_names == ("A", "B c")
    assert FaultProfile.parse("") == FaultProfile() == FaultProfile.parse("none")
    assert not FaultProfile().active and profile.active


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("p429", "expected key=value"),
        ("p999=0.1", "unknown fault 'p999'"),
        ("p429=lots", "p_429 must be a number"),
        ("p429=1.5", "probability from 0 to 1"),
        ("rps=0", "rate_limit_rps must be above 0"),
        ("seed=1.5", "seed must be an integer"),
        ("p429=0.1,p_429=0.2", "given twice"),
        ("latency_ms=-1", "must not be negative"),
    ],
)
def test_parse_errors_are_clear(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        FaultProfile.parse(text)


def test_json_round_trip() -> None:
    profile = FaultProfile(rate_limit_rps=2, p_drop=0.5, seed=1, reject_create_names=("x",))
    assert FaultProfile.from_dict(profile.to_dict()) == profile
    assert FaultProfile.from_dict({"p429": 0.5}).p_429 == 0.5
    with pytest.raises(ValueError, match="unknown fault"):
        FaultProfile.from_dict({"nope": 1})
    with pytest.raises(ValueError, match="must be a number"):
        FaultProfile.from_dict({"p_5xx": "high"})


# -- observable faults ----------------------------------------------------------------------


def _client(app: VapiEmulator, timeout: float = 5.0) -> httpx.Client:
    return httpx.Client(
        transport=SandboxTransport(app=app),
        base_url="http://sandbox",
        headers=AUTH,
        timeout=timeout,
    )


def test_rate_limit_answers_429_with_retry_after() -> None:
    clock = [0.0]
    app = VapiEmulator(token=TOKEN, faults=FaultProfile(rate_limit_rps=2), clock=lambda: clock[0])
    with _client(app) as c:
        codes = [c.get("/assistant").status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        r = c.get("/assistant")
        assert r.json() == {
            "message": "Rate limit exceeded",
            "error": "Too Many Requests",
            "statusCode": 429,
        }
        assert int(r.headers["Retry-After"]) >= 1
        clock[0] += 0.5  # one token back at 2 rps
        assert c.get("/assistant").status_code == 200
        assert c.get("/assistant").status_code == 429
    assert app.stats()["rate_limited"] == 3


def test_random_429_and_5xx_happen_before_anything() -> None:
    app = VapiEmulator(token=TOKEN, faults=FaultProfile(p_429=1.0))
    with _client(app) as c:
        r = c.post("/assistant", json=assistant_body())
        assert r.status_code == 429 and r.headers["Retry-After"] == "1"
        app.set_faults(FaultProfile(p_5xx=1.0, seed=4))
        codes = {c.post("/assistant", json=assistant_body()).status_code for _ in range(20)}
        assert codes == {500, 502, 503}
    assert app.store.counts()["assistant"] == 0
    assert app.stats()["creates"]["assistant"] == 0


def test_ambiguous_post_creates_yet_answers_502_or_drops() -> None:
    app = VapiEmulator(token=TOKEN, faults=FaultProfile(p_ambiguous_post=1.0, seed=1))
    outcomes: list[str] = []
    with _client(app) as c:
        for _ in range(8):
            try:
                outcomes.append(str(c.post("/assistant", json=assistant_body()).status_code))
            except httpx.RemoteProtocolError:
                outcomes.append("dropped")
        assert c.get("/assistant").status_code == 200  # only POSTs are ambiguous
    assert set(outcomes) == {"502", "dropped"}
    assert app.store.counts()["assistant"] == 8  # every create was performed
    assert app.stats()["creates"]["assistant"] == 8
    assert app.stats()["ambiguous_posts"] == 8


def test_script_plays_exact_outcomes_per_method_in_order() -> None:
    script = ("POST:ambiguous", "GET:403*2", "*:refuse", "POST:400")
    app = VapiEmulator(token=TOKEN, faults=FaultProfile(script=script))
    with _client(app) as c:
        assert c.post("/assistant", json=assistant_body()).status_code == 502
        assert [c.get("/assistant").status_code for _ in range(2)] == [403, 403]
        with pytest.raises(httpx.ConnectError, match="refused"):
            c.get("/assistant")  # `*` takes the next request, whatever its method
        assert c.post("/assistant", json=assistant_body()).status_code == 400
        assert c.get("/assistant").status_code == 200  # the script is used up
    assert app.store.counts()["assistant"] == 1  # only the ambiguous create was performed
    assert app.stats()["ambiguous_posts"] == 1
    app.set_faults(FaultProfile(script=("GET:503",)))  # setting a profile restarts it
    with _client(app) as c:
        assert c.get("/assistant").status_code == 503


def test_script_parsing_and_errors() -> None:
    profile = FaultProfile.parse("script=POST:ambiguous-drop|get:500*3")
    assert profile.script == ("POST:ambiguous-drop", "get:500*3") and profile.active
    assert FaultProfile.from_dict(profile.to_dict()) == profile
    for bad, words in [
        ("PUT:500", "METHOD one of"),
        ("GET:200", "status from 400 to 599"),
        ("GET:403*0", "at least 1"),
        ("GET", "METHOD:OUTCOME"),
    ]:
        with pytest.raises(ValueError, match=f"step {re.escape(repr(bad))}.*{words}"):
            FaultProfile.parse(f"script={bad}")


def test_drop_closes_the_connection_in_process() -> None:
    app = VapiEmulator(token=TOKEN, faults=FaultProfile(p_drop=1.0))
    with _client(app) as c, pytest.raises(httpx.RemoteProtocolError):
        c.post("/assistant", json=assistant_body())
    assert app.store.counts()["assistant"] == 0 and app.stats()["dropped"] == 1


def test_hang_exceeds_the_client_timeout_in_process() -> None:
    slept: list[float] = []
    faults = FaultProfile(p_hang=1.0, hang_seconds=30)
    app = VapiEmulator(token=TOKEN, faults=faults, sleep=slept.append)
    with _client(app, timeout=0.25) as c, pytest.raises(httpx.ReadTimeout):
        c.get("/assistant")
    assert slept == [0.25]


def test_latency_is_added_to_every_request() -> None:
    app = VapiEmulator(token=TOKEN, faults=FaultProfile(latency_ms=60))
    with _client(app) as c:
        start = time.monotonic()
        for _ in range(3):
            assert c.get("/assistant").status_code == 200
        assert time.monotonic() - start >= 0.18


def test_same_seed_replays_the_same_faults() -> None:
    profile = FaultProfile(p_429=0.2, p_5xx=0.2, p_drop=0.1, p_ambiguous_post=0.3, seed=42)

    def run() -> list[str]:
        app = VapiEmulator(token=TOKEN, faults=profile)
        seen: list[str] = []
        with _client(app) as c:
            for i in range(40):
                try:
                    r = c.request("POST" if i % 2 else "GET", "/assistant", json={})
                    seen.append(str(r.status_code))
                except httpx.RemoteProtocolError:
                    seen.append("drop")
        return seen

    first = run()
    assert first == run()
    assert len(set(first)) >= 4  # the faults did happen
    one, two = FaultInjector(profile), FaultInjector(profile)
    assert [one.decide("POST") for _ in range(30)] == [two.decide("POST") for _ in range(30)]


# -- over a real socket ---------------------------------------------------------------------


@pytest.fixture
def socket_app() -> Iterator[tuple[VapiEmulator, str]]:
    app = VapiEmulator(token=TOKEN)
    with running_server(app) as url:
        yield app, url


def test_drop_over_a_socket_sends_nothing(socket_app: tuple[VapiEmulator, str]) -> None:
    app, url = socket_app
    app.set_faults(FaultProfile(p_drop=1.0))
    with httpx.Client(base_url=url, headers=AUTH) as c, pytest.raises(httpx.RemoteProtocolError):
        c.get("/assistant")


def test_hang_over_a_socket_times_the_client_out(socket_app: tuple[VapiEmulator, str]) -> None:
    app, url = socket_app
    app.set_faults(FaultProfile(p_hang=1.0, hang_seconds=1.5))
    with httpx.Client(base_url=url, headers=AUTH, timeout=0.3) as c:
        start = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            c.get("/assistant")
        assert time.monotonic() - start < 1.2
    app.set_faults(FaultProfile())
    with httpx.Client(base_url=url, headers=AUTH) as c:
        assert c.get("/assistant").status_code == 200  # the server is not blocked


def test_ambiguous_post_over_a_socket(socket_app: tuple[VapiEmulator, str]) -> None:
    app, url = socket_app
    app.set_faults(FaultProfile(p_ambiguous_post=1.0, seed=1))
    outcomes: set[str] = set()
    with httpx.Client(base_url=url, headers=AUTH) as c:
        for _ in range(8):
            try:
                r = c.post("/assistant", json=assistant_body())
                outcomes.add(f"{r.status_code} {r.text}")
            except httpx.RemoteProtocolError:
                outcomes.add("dropped")
    assert outcomes == {"502 error code: 502", "dropped"}
    assert app.store.counts()["assistant"] == 8
