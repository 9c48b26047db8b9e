"""Group commit for webhooks: requests that arrive while a batch is being written wait for the next batch, and
each batch is written in one transaction. Every request is still answered only after its own rows are
committed; what it saves is the per-request transaction (and the per-request round trips of a row-at-a-time
write), which caps a one-transaction-per-webhook design well below what the HTTP server can take.

Nobody waits for a batch to fill: whoever finds the writer idle is written at once (alone, when the server is
quiet), and whatever arrives meanwhile goes in together next, after `linger_s`: under load, the requests
answered by one batch come back a moment later, and without that pause the next batch would leave without them
(two half batches taking turns instead of one full one). Writing happens off the event loop, on `writers`
threads per process: with more than one, a batch is written while another waits on its commit.
`LP_GROUP_COMMIT_WRITERS` and `LP_GROUP_COMMIT_LINGER_S` override both for tuning."""

from __future__ import annotations

import asyncio
import os
import sys
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

SWITCH_INTERVAL_S = 0.0005
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Queue:
    waiting: list[tuple[Any, asyncio.Future[Any]]] = field(default_factory=list)
    writing: set[asyncio.Task[None]] = field(default_factory=set)


class GroupCommit(Generic[T, R]):
    """`await submit(item)` returns `write([...])`'s result for the item (or raises its exception).

    `write(items)` gets every item waiting (at most `max_batch`) and returns one result or exception per item,
    in order; it runs on this committer's own threads, at most `writers` batches at a time per process."""

    def __init__(self, name: str, write: Callable[[list[T]], list[R | Exception]], *, max_batch: int = 256,
                 writers: int = 1, linger_s: float = 0.0) -> None:
        self.name, self._write, self.max_batch = name, write, max_batch
        self.writers = int(os.environ.get("LP_GROUP_COMMIT_WRITERS", writers))
        self.linger_s = float(os.environ.get("LP_GROUP_COMMIT_LINGER_S", linger_s))
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue] = weakref.WeakKeyDictionary()
        self._executor: tuple[int, ThreadPoolExecutor] | None = None

    def _thread(self) -> ThreadPoolExecutor:
        if self._executor is None or self._executor[0] != os.getpid():  # a forked server process gets its own
            # the writer waits on the database a few times per batch, and each time it wakes it needs the GIL
            # back from the event loop: Python's default 5 ms switch interval stalled every round trip
            sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
            self._executor = (os.getpid(), ThreadPoolExecutor(self.writers, thread_name_prefix=self.name))
        return self._executor[1]

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _Queue()
        future: asyncio.Future[R] = loop.create_future()
        queue.waiting.append((item, future))
        if len(queue.writing) < self.writers:
            queue.writing.add(loop.create_task(self._drain(loop, queue)))
        return await future

    async def _drain(self, loop: asyncio.AbstractEventLoop, queue: _Queue) -> None:
        try:
            first = True
            while queue.waiting:
                if self.linger_s and not first:  # the clients just answered are sending their next request
                    await asyncio.sleep(self.linger_s)
                first = False
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
            task = asyncio.current_task()
            if task is not None:
                queue.writing.discard(task)
