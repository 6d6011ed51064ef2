"""The engine's settings: ``executor`` (where the checks run) and the ``celery`` section.

Reads: the ``celery:`` section of the configuration file (through :class:`pipeline.config.Settings`).
Returns: a frozen :class:`CelerySettings`. ``executor: celery`` needs ``state.url: postgresql://...``; that
rule is checked by ``Settings`` itself, which sees both keys.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Executor = Literal["local", "celery"]  # local: the one-process run; celery: the coordinator and its workers

_BROKER_SCHEMES = ("redis://", "rediss://", "redis+socket://", "amqp://", "amqps://", "pyamqp://")
_SOCKET = "redis+socket://"  # kombu's name of a Redis on a Unix socket; redis-py calls it unix://


class CelerySettings(BaseModel):
    """Where the coordinator sends the check work and how long it waits (``celery.*``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    broker_url: str = "redis://127.0.0.1:6379/0"
    # Redis holding the per-host leases; null: broker_url, which must then be a redis:// URL.
    lease_url: str | None = None
    # Seconds before the Redis transport hands an unacknowledged task to another worker: a task whose
    # worker died comes back after this long (a longer task is also handed out again; its host leases make
    # the copy wait, then skip what the first one recorded).
    visibility_timeout: float = Field(default=300.0, gt=0, le=86_400)
    # Seconds a worker's lease on a host lasts without renewal (it renews every third of it while checking).
    lease_ttl: float = Field(default=30.0, gt=0, le=3600)
    # Seconds the coordinator waits for the broker, the database and the workers before it gives up.
    wait_timeout: float = Field(default=60.0, gt=0, le=86_400)

    @property
    def leases(self) -> str:
        """The Redis URL of the per-host leases."""
        if self.lease_url is None and self.broker_url.startswith(_SOCKET):
            return "unix://" + self.broker_url.removeprefix(_SOCKET)
        return self.lease_url or self.broker_url

    @field_validator("broker_url")
    @classmethod
    def _broker_scheme(cls, value: str) -> str:
        if not value.startswith(_BROKER_SCHEMES) or not re.match(r"^[a-z+]+://\S+$", value):
            raise ValueError(f"must be a redis:// or amqp:// URL, got {value.split('@')[-1]!r}")
        return value

    @field_validator("lease_url")
    @classmethod
    def _lease_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"must be a redis:// URL, got {value.split('@')[-1]!r}")
        return value

    @model_validator(mode="after")
    def _leases_in_redis(self) -> CelerySettings:
        if self.lease_url is None and not self.broker_url.startswith(("redis://", "rediss://", _SOCKET)):
            raise ValueError(
                "lease_url: the per-host leases live in Redis; give a redis:// URL with this broker"
            )
        return self
