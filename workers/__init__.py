"""Celery app and tasks: agent turns, outbound sends, workflow steps, campaign batches, syncs."""
