"""The Celery app, built from settings: the same for the coordinator (which sends) and a worker (which runs).

Reads: ``celery.*`` and ``state.url``. Returns: a ``Celery`` app with the one task, ``pipeline.check_shard``.

Why these settings: a task is acknowledged only when it has finished (``task_acks_late``) and put back when
its worker process dies (``task_reject_on_worker_lost``), so a worker killed mid-task loses nothing; each
worker process reserves one task at a time (``worker_prefetch_multiplier=1``), so a long shard never holds
others hostage on a busy worker; the Redis transport hands an unacknowledged task to another worker after
``celery.visibility_timeout`` seconds (swept for every quarter of it). Messages are JSON only: no pickle,
no code in a message.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from pipeline.engineconfig import CelerySettings

TASK = "pipeline.check_shard"
QUEUE = "pipeline-checks"


def broker_socket_timeout(celery: CelerySettings) -> float:
    """Seconds a broker command may wait for its answer: half the coordinator's patience, 5 to 30 s."""
    return max(5.0, min(30.0, celery.wait_timeout / 2))


def warm_pool_process(**_: object) -> None:
    """A new pool process makes the TLS context of the default ``http.*`` before it takes a shard: loading
    the CA store cost each pool process 60 ms of CPU or more at the start of its first shard, all of them
    at once when a run starts (the context of other settings is made by the first shard that needs it)."""
    from pipeline.check.http import prepare_tls
    from pipeline.config import HttpSettings

    prepare_tls(HttpSettings())


def build_app(celery: CelerySettings, state_url: str | None) -> Celery:
    """The app on ``celery.broker_url``; its task writes to the history at ``state_url``."""
    if state_url is not None:  # a worker's app
        worker_process_init.connect(warm_pool_process, weak=False, dispatch_uid="pipeline.warm_tls")
        import pipeline.distributed.tasks  # noqa: F401  (before the pool processes fork: not once in each)
    app = Celery("pipeline", broker=celery.broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={
            "visibility_timeout": celery.visibility_timeout,
            # Kombu sweeps for tasks past their visibility timeout every interval x throttle seconds
            # (100 s by default): sweep every quarter of the timeout (1 to 10 s) instead.
            "unacked_restore_interval": max(1, min(10, int(celery.visibility_timeout / 4))),
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": min(10.0, celery.wait_timeout),  # a vanished broker host
            # A broker gone silent (a failover, a stopped host, a NAT that dropped the connection) without
            # closing the socket: without a timeout a publish or a ping waits forever. Above kombu's 1 s
            # BRPOP timeout, so an idle worker's poll never trips it.
            "socket_timeout": broker_socket_timeout(celery),
            "socket_keepalive": True,
            "health_check_interval": 10,
        },
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # results travel through the history database, not a result backend
        task_default_queue=QUEUE,
        worker_send_task_events=False,
        enable_utc=True,
    )

    @app.task(name=TASK, bind=True)  # type: ignore[untyped-decorator]
    def check_shard(task: Any, payload: dict[str, Any]) -> None:
        if state_url is None:
            raise RuntimeError("pipeline worker needs state.url: postgresql://...")
        # Imported by a worker's app only (above): the coordinator, which only sends, never loads the HTTP
        # stack and the Redis client the task needs (0.2-0.3 s of its start-up).
        from pipeline.distributed import tasks

        tasks.check_shard(payload, state_url, celery, str(task.request.hostname or ""))

    if state_url is not None:
        _answer_setup(state_url, celery)
    return app


SETUP = "pipeline_setup"  # the inspect command a coordinator broadcasts before its dispatch


def _answer_setup(state_url: str, celery: CelerySettings) -> None:
    """Register, in this worker, the answer to ``SETUP``: its pool's size (what Celery's ``stats`` says)
    and what ``tasks.describe`` tells of its database and leases. Run by the worker's main process."""
    from celery.worker.control import inspect_command

    from pipeline.distributed import tasks

    @inspect_command(name=SETUP, args=[("job", str)], signature="<job>")  # type: ignore[untyped-decorator]
    def pipeline_setup(state: Any, job: str = "", **_: object) -> dict[str, Any]:
        pool = int(state.consumer.pool.info.get("max-concurrency") or 1)
        return {"pool": pool, **tasks.describe(job, state_url, celery)}
