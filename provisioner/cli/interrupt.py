"""Ctrl-C during an apply: the first stops starting new work and lets requests in flight
finish; the second has the default (immediate) effect."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import click


@contextmanager
def interruptible() -> Iterator[threading.Event]:
    """An event set by the first Ctrl-C (signals reach only the main thread: elsewhere the
    event is never set)."""
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        event.set()
        click.echo(
            "\nInterrupt received: finishing requests in flight, starting nothing new "
            "(press Ctrl-C again to stop at once).",
            err=True,
        )
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield event
    finally:
        signal.signal(signal.SIGINT, previous)
