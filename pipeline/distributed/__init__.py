"""The distributed engine (``executor: celery``): the coordinator sends the check work as Celery tasks, one
per shard of whole hosts; ``pipeline worker`` processes check them and write what they observed to the
shared PostgreSQL history; the coordinator reads it back and the run goes on as a local one.

Modules: ``app`` (the Celery app built from settings), ``codec`` (records <-> JSON), ``observed`` (the
shared tables of a dispatch), ``leases`` (per-host leases in Redis), ``tasks`` (the worker's task),
``coordinator`` (send, progress, wait, collect).
"""
