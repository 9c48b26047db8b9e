"""kombu's Redis transport, made to outlive a broker restart (the Celery app names it in `broker_transport`).

When Redis goes away, Celery 5.7's consumer closes the broken connection before reconnecting, and closing its
channel restores the messages the worker had reserved (`QoS.restore_unacked`). With the broker gone that
restore cannot run: kombu 5.7 raises an AttributeError from the already-detached connection (it has no client
left to build a pool from), which is no connection error, so the worker took it as unrecoverable and exited.
Here the restore gives up instead: those messages stay in the broker's unacked set, which hands them out again
after the visibility timeout, and the outbox dispatcher hands their turns and replies out much sooner. The same
holds for an acknowledgement or a rejection (a task that gave up while the broker was down) that finds the
connection detached: kombu raised the same AttributeError from `_remove_from_indices`."""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis, virtual

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


    def ack(self, delivery_tag: Any) -> None:
        """Acknowledge; with no broker to reach, forget the message here and leave it to the redelivery."""
        self._settle(delivery_tag, lambda: super(QoS, self).ack(delivery_tag))

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        """Reject (a task that gave up); with no broker to reach, the same as `ack` above."""
        self._settle(delivery_tag, lambda: super(QoS, self).reject(delivery_tag, requeue=requeue))

    def _settle(self, delivery_tag: Any, settle: Any) -> None:
        try:
            settle()
        except AttributeError:  # kombu 5.7: the channel's connection was detached (the broker went away)
            log.warning("broker connection lost: message %s left to the broker's redelivery", delivery_tag)
            virtual.QoS.ack(self, delivery_tag)  # only this process's bookkeeping


class Channel(redis.Channel):
    """The Redis channel with the QoS above."""

    QoS = QoS


class Transport(redis.Transport):
    """The Redis transport with the channel above."""

    Channel = Channel
