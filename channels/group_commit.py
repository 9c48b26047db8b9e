"""Group commit for webhooks: requests that arrive while a batch is being written wait for the next batch, and
each batch is written in one transaction. Every request is still answered only after its own rows are
committed; what it saves is the per-request transaction (and the per-request round trips of a row-at-a-time
write), which caps a one-transaction-per-webhook design well below what the HTTP server can take.

Nobody waits for a batch to fill: whoever finds the writer idle is written at once (alone, when the server is
quiet), and whatever arrives meanwhile goes in together next. Writing happens on one thread per process, off
the event loop."""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Queue:
    waiting: list[tuple[Any, asyncio.Future[Any]]] = field(default_factory=list)
    writing: asyncio.Task[None] | None = None


class GroupCommit(Generic[T, R]):
    """`await submit(item)` returns `write([...])`'s result for the item (or raises its exception).

    `write(items)` gets every item waiting (at most `max_batch`) and returns one result or exception per item,
    in order; it runs on this committer's own thread, one batch at a time per process."""

    def __init__(self, name: str, write: Callable[[list[T]], list[R | Exception]], *, max_batch: int = 256) -> None:
        self.name, self._write, self.max_batch = name, write, max_batch
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue] = weakref.WeakKeyDictionary()
        self._executor: tuple[int, ThreadPoolExecutor] | None = None

    def _thread(self) -> ThreadPoolExecutor:
        if self._executor is None or self._executor[0] != os.getpid():  # a forked server process gets its own
            self._executor = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix=self.name))
        return self._executor[1]

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _Queue()
        future: asyncio.Future[R] = loop.create_future()
        queue.waiting.append((item, future))
        if queue.writing is None:
            queue.writing = loop.create_task(self._drain(loop, queue))
        return await future

    async def _drain(self, loop: asyncio.AbstractEventLoop, queue: _Queue) -> None:
        try:
            while queue.waiting:
                batch = queue.waiting[:self.max_batch]
                del queue.waiting[:len(batch)]
                try:
                    results: list[Any] = await loop.run_in_executor(self._thread(), self._write,
                                                                    [item for item, _ in batch])
                except Exception as exc:  # write() answers per item; this is a crash of write itself
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # the client went away; its item was written all the same
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            queue.writing = None
