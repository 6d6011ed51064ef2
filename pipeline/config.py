"""Typed settings: defaults, load from YAML, validate, apply CLI overrides.

Reads: a YAML file (default ``config/pipeline.yaml``). Returns: a frozen ``Settings``.
An unknown key, a wrong type or an impossible value raises ``ConfigError`` whose message names the
key's dotted path (``http.per_host_concurrency: …``). Relative paths in the file are resolved against the
current directory, so the same file works from cron (which sets WorkingDirectory) and a terminal.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pipeline import __version__
from pipeline.accept import DEFAULT_ACCEPT, check_headers, check_host_key, parse_accept
from pipeline.engineconfig import CelerySettings, Executor


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CorpusSettings(_Section):
    roots: list[Path] = Field(default_factory=lambda: [Path("seeds")], min_length=1)
    patterns: list[str] = Field(default_factory=lambda: ["*.md", "*.txt"], min_length=1)
    max_file_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    # The read pass parses in a pool of this many processes (0: one per CPU core; 1: no pool) when at
    # least `pool_min_files` files holding at least `pool_min_bytes` need parsing; below that, starting
    # the pool costs more than it saves.
    read_processes: int = Field(default=0, ge=0)
    pool_min_files: int = Field(default=2000, ge=1)
    pool_min_bytes: int = Field(default=4 * 1024 * 1024, ge=0)


class LinkSettings(_Section):
    # Field names (at the top level and in each item of every list in `nested`) whose values are URLs.
    # `images[].url` means: the `url` of every item of the `images` list.
    fields: list[str] = Field(
        default_factory=lambda: ["originalUrl", "webUrl", "ampWebUrl", "cdnAmpWebUrl", "images[].url"],
        min_length=1,
    )
    nested: list[str] = Field(default_factory=lambda: ["related"])
    # Regular expressions; a URL matching any is reported `skipped` and never requested.
    exclude: list[str] = Field(default_factory=list)
    # A file of more such expressions, one per line (`#` comments), like lychee's `.lycheeignore`.
    exclude_file: Path | None = None
    # Regular expressions; when any is given, only matching URLs are checked (an include beats an exclude).
    include: list[str] = Field(default_factory=list)
    # Fields whose page is fetched whole (GET) so that its metadata can be refreshed.
    page_fields: list[str] = Field(default_factory=lambda: ["webUrl", "originalUrl"])

    @field_validator("fields")
    @classmethod
    def _fields_shape(cls, value: list[str]) -> list[str]:
        for item in value:
            if not re.fullmatch(r"[A-Za-z_][\w-]*(\[\]\.[A-Za-z_][\w-]*)?", item):
                raise ValueError(f"{item!r} is not a field name or `list[].field`")
        return value

    @field_validator("exclude", "include")
    @classmethod
    def _exclude_compiles(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from exc
        return value

    @field_validator("exclude_file")
    @classmethod
    def _exclude_file_reads(cls, value: Path | None) -> Path | None:
        if value is not None:
            from pipeline.ignore import read_rules  # the ignore-file syntax lives with the filter

            read_rules(value, "links.exclude_file")
        return value


def _check_accept(value: Any) -> Any:
    parse_accept(value)
    return value


class HostSettings(_Section):
    """Overrides for one host (``http.hosts."example.com"``); unset keys follow the ``http`` section."""

    accept: list[int | str] | str | None = None
    per_host_concurrency: int | None = Field(default=None, ge=1, le=1_000)
    headers: dict[str, str] = Field(default_factory=dict)  # sent to this host only (a token, say)

    @field_validator("accept")
    @classmethod
    def _accept_parses(cls, value: Any) -> Any:
        return None if value is None else _check_accept(value)

    @field_validator("headers")
    @classmethod
    def _headers_valid(cls, value: dict[str, str]) -> dict[str, str]:
        return check_headers(value)


class HttpSettings(_Section):
    # Where a site owner can reach whoever runs the checker (a URL or an e-mail address); it goes into the
    # default User-Agent. Set it: sites block anonymous bots.
    contact: str = ""
    # null: `link-pipeline/<version> (+<contact>; link health checker)`.
    user_agent: str | None = None
    # Status codes that count as alive (lychee's syntax: 200..=299, 200..300, 403, ..=204, 200..).
    accept: list[int | str] | str = Field(default_factory=lambda: list[int | str]([DEFAULT_ACCEPT]))
    # Per-host overrides: accept, per_host_concurrency, headers.
    hosts: dict[str, HostSettings] = Field(default_factory=dict)
    max_concurrency: int = Field(default=128, ge=1, le=10_000)
    per_host_concurrency: int = Field(default=8, ge=1, le=1_000)
    min_host_interval: float = Field(default=0.0, ge=0, le=3600)  # seconds between request starts per host
    connect_timeout: float = Field(default=10.0, gt=0, le=600)
    read_timeout: float = Field(default=20.0, gt=0, le=600)
    total_timeout: float = Field(default=45.0, gt=0, le=3600)  # one request, all redirects included
    max_redirects: int = Field(default=10, ge=0, le=50)
    max_page_bytes: int = Field(default=1024 * 1024, gt=0)  # head of a page read for metadata
    max_decompressed_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    max_header_bytes: int = Field(default=64 * 1024, gt=0)
    verify_tls: bool = True
    ca_bundle: Path | None = None  # extra CA file (PEM), e.g. an intranet's
    # Networks the address guard lets through (loopback, private, …). Empty: public addresses only.
    allow_networks: list[str] = Field(default_factory=list)
    # One GET per host, per run, of a random URL that cannot exist, to recognise pages that are soft 404s.
    soft404_probe: bool = True

    @property
    def agent(self) -> str:
        """The User-Agent sent: ``user_agent`` when set, else the tool, its version and the contact."""
        if self.user_agent:
            return self.user_agent
        contact = self.contact.strip() or "no contact set: see http.contact"
        return f"link-pipeline/{__version__} (+{contact}; link health checker)"

    @field_validator("contact")
    @classmethod
    def _contact_one_line(cls, value: str) -> str:
        if any(ch in value for ch in "\r\n()"):
            raise ValueError(f"{value!r} must be one line without parentheses (it goes into the User-Agent)")
        return value

    @field_validator("accept")
    @classmethod
    def _accept_parses(cls, value: Any) -> Any:
        return _check_accept(value)

    @field_validator("hosts", mode="before")
    @classmethod
    def _host_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            out = {}
            for key, rule in value.items():
                host = check_host_key(str(key))
                if host in out:
                    raise ValueError(f"{key!r} is given twice")
                out[host] = rule
            return out
        return value

    @field_validator("ca_bundle")
    @classmethod
    def _ca_bundle_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{str(value)!r} is not a readable file")
        return value

    @field_validator("allow_networks")
    @classmethod
    def _networks_parse(cls, value: list[str]) -> list[str]:
        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as exc:
                raise ValueError(f"{net!r} is not a network: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _per_host_within_global(self) -> HttpSettings:
        if self.per_host_concurrency > self.max_concurrency:
            raise ValueError(
                f"per_host_concurrency ({self.per_host_concurrency}) cannot exceed max_concurrency "
                f"({self.max_concurrency})"
            )
        for host, rule in self.hosts.items():
            if rule.per_host_concurrency is not None and rule.per_host_concurrency > self.max_concurrency:
                raise ValueError(
                    f"http.hosts.{host}.per_host_concurrency ({rule.per_host_concurrency}) cannot exceed "
                    f"max_concurrency ({self.max_concurrency})"
                )
        return self


class RetrySettings(_Section):
    attempts: int = Field(default=3, ge=1, le=10)  # total tries for transient failures
    backoff_initial: float = Field(default=1.0, ge=0, le=600)
    backoff_max: float = Field(default=30.0, ge=0, le=3600)
    retry_after_max: float = Field(default=60.0, ge=0, le=3600)  # a longer Retry-After gives up instead


class Threshold(_Section):
    runs: int = Field(ge=1, le=1000)
    days: float = Field(ge=0, le=3650)


class OutageSettings(_Section):
    # The run is an outage when at least this share of the baseline hosts (or, before there is one, of all
    # hosts checked) failed below HTTP ...
    network_failure_ratio: float = Field(default=0.8, gt=0, le=1)
    # ... and, without a baseline, at least this many hosts were checked.
    min_hosts: int = Field(default=3, ge=1)
    # URLs that must answer for the run to count; if any fails below HTTP, the run is an outage.
    canary_urls: list[str] = Field(default_factory=list)
    # Hosts that answered before, re-checked every run (one URL each) as a baseline for our own network.
    baseline_hosts: int = Field(default=5, ge=0, le=100)
    # Complete runs in a row that may be outages before the run exits 7 (0: never); the log says since when.
    max_consecutive: int = Field(default=3, ge=0, le=1000)


class ArchiveSettings(_Section):
    """Archive copies of dead links, from the Internet Archive's availability API (``health.archive``)."""

    enabled: bool = True
    endpoint: str = "https://archive.org/wayback/available"
    failing: bool = False  # also look up links that are failing, not yet dead
    write: bool = False  # write `archiveUrl` into the article's link-health entry
    retry_none_after_days: float = Field(default=30, ge=0, le=3650)  # "none found" is asked again after
    min_interval: float = Field(default=1.0, ge=0, le=3600)  # seconds between requests to the archive
    timeout: float = Field(default=20.0, gt=0, le=600)
    max_lookups: int = Field(default=300, ge=0)  # per run; the rest wait for the next run

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_http(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value


_THRESHOLD_DEFAULTS = {"hard": {"runs": 3, "days": 3}, "soft": {"runs": 5, "days": 7}}


class HealthSettings(_Section):
    hard: Threshold = Threshold(**_THRESHOLD_DEFAULTS["hard"])
    soft: Threshold = Threshold(**_THRESHOLD_DEFAULTS["soft"])
    recheck_ok_after_days: float = Field(default=7, ge=0, le=3650)
    outage: OutageSettings = OutageSettings()
    flag_field: str = Field(default="linkHealth", pattern=r"^[A-Za-z_][\w-]*$")
    flag: bool = True  # write dead links into the article's front-matter
    archive: ArchiveSettings = ArchiveSettings()

    @field_validator("hard", "soft", mode="before")
    @classmethod
    def _partial_threshold(cls, value: Any, info: ValidationInfo) -> Any:
        # `hard: {runs: 1}` keeps the default `days`: every key of the file is optional.
        if isinstance(value, dict) and info.field_name:
            return {**_THRESHOLD_DEFAULTS[info.field_name], **value}
        return value

    @model_validator(mode="after")
    def _archive_write_needs_flags(self) -> HealthSettings:
        if self.archive.write and not self.flag:
            raise ValueError(
                "health.archive.write: needs health.flag: true (the copy goes into the flag entry)"
            )
        return self


class ExcerptPolicy(_Section):
    policy: Literal["fill", "overwrite", "never"] = "fill"
    min_length: int = Field(default=40, ge=0)  # never write a shorter description
    max_length: int = Field(default=1000, ge=1)  # a longer description is cut at a word boundary
    from_body: bool = True  # a page that declares no description may supply its first real paragraph

    @model_validator(mode="after")
    def _lengths(self) -> ExcerptPolicy:
        if self.min_length > self.max_length:
            raise ValueError(f"min_length ({self.min_length}) is above max_length ({self.max_length})")
        return self


class ImagePolicy(_Section):
    policy: Literal["refresh", "replace-dead", "never"] = "replace-dead"
    fill_missing: bool = True
    from_body: bool = True  # a page that declares no share image may supply its first content image
    correct_size: bool = True
    max_probe_bytes: int = Field(default=256 * 1024, gt=0)


class MetadataSettings(_Section):
    enabled: bool = True
    excerpt: ExcerptPolicy = ExcerptPolicy()
    images: ImagePolicy = ImagePolicy()
    write_canonical: bool = False  # opt-in: discovered canonical URLs are only reported by default
    write_amp: bool = False  # opt-in: discovered AMP URLs are only reported by default


class StateSettings(_Section):
    dir: Path = Path("state")  # history database and lock file live here
    # postgresql://user:password@host:port/db: the history in PostgreSQL (shared by workers); unset: the
    # SQLite file in dir. The lock file stays in dir either way.
    url: str | None = None

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                "must be a postgresql://... URL (leave it unset for the SQLite file in state.dir)"
            )
        return value

    @property
    def database(self) -> Path:
        return self.dir / "history.sqlite3"

    @property
    def lock_file(self) -> Path:
        return self.dir / "pipeline.lock"


class ReportSettings(_Section):
    dir: Path = Path("reports")
    keep_runs: int = Field(default=60, ge=1)  # older run folders are removed
    trend_runs: int = Field(default=30, ge=2)


# The built-in schedule builds (tests/test_config.py), so loading settings that keep it needs no APScheduler:
# every command but `pipeline schedule` starts without it.
_BUILT_IN_SCHEDULE = ("0 3 * * *", "UTC", 0)


class ScheduleSettings(_Section):
    cron: str = "0 3 * * *"  # five fields; weekday names (mon-sun) are safest
    timezone: str = "UTC"
    misfire_grace_time: int = Field(default=3600, ge=1)  # seconds a late run may still start
    jitter: int = Field(default=0, ge=0)  # seconds of random delay added to each run

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError(f"{value!r} must have five fields: minute hour day month day_of_week")
        return value

    @model_validator(mode="after")
    def _trigger_builds(self) -> ScheduleSettings:
        # Build the trigger the scheduler will build (weekday names, time zones) so that a bad schedule is a
        # config error at load, not a crash of the daemon at start.
        if (self.cron, self.timezone, self.jitter) != _BUILT_IN_SCHEDULE:
            from pipeline.cron import build_trigger

            build_trigger(self)
        return self


class LoggingSettings(_Section):
    format: Literal["text", "json"] = "text"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Settings(_Section):
    corpus: CorpusSettings = CorpusSettings()
    links: LinkSettings = LinkSettings()
    http: HttpSettings = HttpSettings()
    retry: RetrySettings = RetrySettings()
    health: HealthSettings = HealthSettings()
    metadata: MetadataSettings = MetadataSettings()
    state: StateSettings = StateSettings()
    reports: ReportSettings = ReportSettings()
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    logging: LoggingSettings = LoggingSettings()
    executor: Executor = "local"  # celery: this run coordinates `pipeline worker` processes
    celery: CelerySettings = CelerySettings()

    @model_validator(mode="after")
    def _celery_needs_postgres(self) -> Settings:
        if self.executor == "celery" and self.state.url is None:
            raise ValueError(
                "executor: celery needs state.url: postgresql://... (the workers write what they observe"
                " to the shared history)"
            )
        return self
