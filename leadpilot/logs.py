"""JSON logs on stdout for every process (API, worker, CLI)."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter


class _Stdout(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stdout` is at the time (test runners swap and close theirs)."""

    @property  # type: ignore[override]
    def stream(self):  # type: ignore[no-untyped-def]
        return sys.stdout

    @stream.setter
    def stream(self, _value) -> None:  # type: ignore[no-untyped-def]
        pass


def configure_logging(level: str = "INFO") -> None:
    """Route the root logger to stdout as one JSON object per line."""
    handler = _Stdout()
    handler.setFormatter(JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).propagate = False  # the API logs its own access lines, with request ids
