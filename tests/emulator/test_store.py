"""The store keeps objects across processes when given a file, and orders them totally."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import httpx
import pytest

from provisioner.emulator import EmulatorStore, make_sandbox_transport
from provisioner.emulator.store import format_timestamp
from tests.emulator.conftest import assistant_body


def test_two_stores_on_one_file_see_the_same_objects(tmp_path: Path) -> None:
    path = tmp_path / "vapi.json"
    first = EmulatorStore(path=path)
    made = first.insert("assistant", {"name": "a"})
    second = EmulatorStore(path=path)
    assert second.get("assistant", made["id"]) == made
    assert second.org_id == first.org_id
    second.insert("assistant", {"name": "b"})
    assert [o["name"] for o in first.objects("assistant")] == ["a", "b"]  # reloaded
    first.reset()
    assert second.counts()["assistant"] == 0


def test_cli_runs_share_objects_through_the_transport(tmp_path: Path) -> None:
    """`provisioner --sandbox plan` then `apply` then `plan`: each a new emulator."""
    path = tmp_path / "vapi.json"
    headers = {"Authorization": "Bearer sandbox"}
    with httpx.Client(transport=make_sandbox_transport(path), base_url="http://s") as c:
        made = c.post("/assistant", json=assistant_body(), headers=headers).json()
    with httpx.Client(transport=make_sandbox_transport(path), base_url="http://s") as c:
        assert c.get(f"/assistant/{made['id']}", headers=headers).json() == made


def test_timestamps_strictly_increase_within_one_millisecond() -> None:
    store = EmulatorStore(now=lambda: 1_700_000_000.0)
    stamps = [store.insert("board", {"name": str(i)})["createdAt"] for i in range(5)]
    assert stamps == sorted(stamps) and len(set(stamps)) == 5
    assert stamps[0] == format_timestamp(1_700_000_000_000) == "2023-11-14T22:13:20.000Z"
    assert stamps[1] == "2023-11-14T22:13:20.001Z"


def test_clock_continues_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "vapi.json"
    early = EmulatorStore(path=path, now=lambda: 2_000_000_000.0)
    last = [early.insert("insight", {"i": i})["createdAt"] for i in range(3)][-1]
    later = EmulatorStore(path=path, now=lambda: 1_000_000_000.0)  # clock went backwards
    assert later.insert("insight", {"i": 3})["createdAt"] > last


def test_threads_never_lose_a_write(tmp_path: Path) -> None:
    store = EmulatorStore(path=tmp_path / "vapi.json")

    def work() -> None:
        for _ in range(25):
            store.insert("assistant", {})

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert EmulatorStore(path=tmp_path / "vapi.json").counts()["assistant"] == 100


def _insert_many(path: str, count: int) -> None:
    store = EmulatorStore(path=Path(path))
    for _ in range(count):
        store.insert("assistant", {})


def test_two_processes_at_once_never_lose_a_write(tmp_path: Path) -> None:
    path = tmp_path / "vapi.json"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_insert_many, args=(str(path), 40)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    objects = EmulatorStore(path=path).objects("assistant")
    assert len(objects) == 80
    stamps = [o["createdAt"] for o in objects]
    assert len(set(stamps)) == 80


def test_unknown_kind_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="unknown kind"):
        EmulatorStore().insert("no-such-kind!", {})


@pytest.mark.parametrize(
    "content",
    [
        "{bad",
        "[]",
        '{"format": 99}',
        '{"format": 1}',
        '{"format": 1, "orgId": "o", "objects": {"assistant": [1]}}',
        '{"format": 1, "orgId": "o", "objects": {"assistant": [{"name": "no id"}]}}',
        '{"format": 1, "orgId": "o", "clockMs": "soon"}',
    ],
)
def test_a_damaged_data_file_is_refused_when_opened(tmp_path: Path, content: str) -> None:
    from provisioner.emulator.store import SandboxDataError

    path = tmp_path / "vapi.json"
    path.write_text(content)
    with pytest.raises(SandboxDataError, match="delete it to reset the sandbox") as caught:
        EmulatorStore(path=path)
    assert str(path) in str(caught.value)


def test_in_process_transport_raises_the_data_error_instead_of_500s(tmp_path: Path) -> None:
    """The CLI's emulator: damage after opening reaches the command as one clear error
    (no traceback printed, no 500 to retry)."""
    from provisioner.emulator.store import SandboxDataError

    path = tmp_path / "vapi.json"
    transport = make_sandbox_transport(path)
    with httpx.Client(
        transport=transport, base_url="http://s", headers={"Authorization": "Bearer t"}
    ) as c:
        assert c.post("/assistant", json=assistant_body()).status_code == 201
        path.write_text("{bad")
        with pytest.raises(SandboxDataError):
            c.get("/assistant")


def test_the_sandbox_folder_is_ignored_by_git(tmp_path: Path) -> None:
    folder = tmp_path / "state/.sandbox/emulator"
    make_sandbox_transport(folder / "vapi.json")
    assert (folder / ".gitignore").read_text().splitlines()[-1] == "*"
