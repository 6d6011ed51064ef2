"""The configuration file -> Settings: YAML with unique keys, errors naming the dotted key, flag overrides.

Reads: a YAML file (default ``config/pipeline.yaml``) or a parsed mapping. Returns: a validated
:class:`pipeline.config.Settings`, or raises ``ConfigError`` whose message names the file and the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    ValidationError,
)

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.models import format_field_path

DEFAULT_CONFIG_PATH = Path("config/pipeline.yaml")


def _dotted(loc: tuple[int | str, ...]) -> str:
    return format_field_path(loc) or "(top level)"


def _raise_validation(exc: ValidationError, origin: str) -> None:
    lines = []
    for err in exc.errors():
        message = err["msg"].removeprefix("Value error, ")
        where = _dotted(err["loc"])
        # A validator that names the key itself (e.g. "schedule.cron: …") says it better than its section.
        if message.startswith(f"{where}."):
            lines.append(message)
        else:
            lines.append(f"{where}: {message}")
    raise ConfigError(f"{origin}: " + "; ".join(lines))


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML loading that refuses a key given twice (the second would silently win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_settings(data: Any, origin: str = "config") -> Settings:
    """Validate a mapping (as read from YAML) into Settings."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: (top level): must be a mapping of sections, got {type(data).__name__}")
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        _raise_validation(exc, origin)
        raise  # unreachable; keeps type checkers content


def load_settings(path: Path | None = None) -> Settings:
    """Read and validate the config file; with no path, the default file if it exists, else defaults."""
    if path is None:
        if not DEFAULT_CONFIG_PATH.exists():
            return Settings()
        path = DEFAULT_CONFIG_PATH
    try:
        with path.open(encoding="utf-8") as stream:  # a stream, so that YAML errors name the file
            data = yaml.load(stream, Loader=_UniqueKeyLoader)  # a SafeLoader: constructs no objects
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse_settings(data, str(path))


def with_overrides(settings: Settings, overrides: dict[str, Any]) -> Settings:
    """Apply CLI overrides given as dotted paths (``{"http.per_host_concurrency": 4}``); None means unset."""
    data = settings.model_dump(mode="python")
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return parse_settings(data, "command line")


def config_source(config_path: Path | None) -> Path | None:
    """The configuration file a command reads: --config, else config/pipeline.yaml here, else none."""
    if config_path is not None:
        return config_path
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None


def describe_config(source: Path | None) -> str:
    """The configuration a run names in its first log line."""
    if source is None:
        return f"built-in defaults (no {DEFAULT_CONFIG_PATH} in {Path.cwd()})"
    return str(source.resolve())


def require_config_file(source: Path | None, settings_given: bool) -> None:
    """A run that writes refuses the built-in defaults unless told where to write.

    Started from another folder, the defaults would read ./seeds and create state/ and reports/ there.
    """
    if source is None and not settings_given:
        raise ConfigError(
            f"no configuration file: {DEFAULT_CONFIG_PATH} does not exist in {Path.cwd()}; "
            "pass --config FILE (or run from the project folder), or give both --state-dir and --reports-dir "
            "to run on built-in defaults"
        )


def require_roots(settings: Settings, from_command_line: bool) -> None:
    """A corpus root that does not exist is a configuration error: a run over it would check nothing."""
    missing = [root for root in settings.corpus.roots if not root.exists()]
    if missing:
        where = "PATH argument" if from_command_line else "corpus.roots"
        names = ", ".join(repr(str(root)) for root in missing)
        raise ConfigError(f"{where}: {names} does not exist (in {Path.cwd()})")


def is_partial_run(paths: tuple[Path, ...], configured: Settings) -> bool:
    """PATH arguments that are not exactly the configured roots make a partial run (not a night)."""
    return bool(paths) and {p.resolve() for p in paths} != {p.resolve() for p in configured.corpus.roots}
