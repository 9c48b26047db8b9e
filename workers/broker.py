"""kombu's Redis transport, made to outlive a broker restart (the Celery app names it in `broker_transport`).

When Redis goes away, Celery 5.7's consumer closes the broken connection before reconnecting, and closing its
channel restores the messages the worker had reserved (`QoS.restore_unacked`). With the broker gone that
restore cannot run: kombu 5.7 raises an AttributeError from the already-detached connection (it has no client
left to build a pool from), which is no connection error, so the worker took it as unrecoverable and exited.
Here the restore gives up instead: those messages stay in the broker's unacked set, which hands them out again
after the visibility timeout, and the outbox dispatcher hands their turns and replies out much sooner."""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis

log = logging.getLogger("leadpilot.workers")


class QoS(redis.QoS):
    """Reserved messages restored on close, unless the broker connection is already gone."""

    def restore_unacked(self, client: Any = None) -> Any:
        """Put the reserved messages back on their queues; with no broker to reach, leave them where they are."""
        try:
            return super().restore_unacked(client)
        except AttributeError:  # kombu 5.7: the channel's connection was detached before this ran
            log.warning("broker connection lost: %d reserved message(s) left to the broker's redelivery",
                        len(self._delivered))
            self._delivered.clear()
            return None


class Channel(redis.Channel):
    """The Redis channel with the QoS above."""

    QoS = QoS


class Transport(redis.Transport):
    """The Redis transport with the channel above."""

    Channel = Channel
