"""Configuration: defaults, validation with dotted paths, CLI overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.configfile import load_settings, parse_settings, with_overrides
from pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def test_default_file_matches_builtin_defaults() -> None:
    """The shipped config/pipeline.yaml states exactly the built-in defaults."""
    assert load_settings(REPO / "config" / "pipeline.yaml") == Settings()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"http": {"per_host_concurency": 3}}, "http.per_host_concurency: Extra inputs are not permitted"),
        (
            {"http": {"per_host_concurrency": "many"}},
            "http.per_host_concurrency: Input should be a valid integer",
        ),
        (
            {"health": {"hard": {"runs": 0, "days": 3}}},
            "health.hard.runs: Input should be greater than or equal",
        ),
        ({"links": {"fields": ["web url"]}}, "links.fields: 'web url' is not a field name"),
        ({"links": {"exclude": ["("]}}, "links.exclude: '(' is not a regular expression"),
        ({"http": {"allow_networks": ["10.0.0.0/33"]}}, "http.allow_networks: '10.0.0.0/33'"),
        (
            {"http": {"per_host_concurrency": 500}},
            "http: per_host_concurrency (500) cannot exceed max_concurrency (128)",
        ),
        ({"schedule": {"cron": "0 3 * *"}}, "schedule.cron: '0 3 * *' must have five fields"),
        (
            {"schedule": {"cron": "61 3 * * *"}},
            "schedule.cron: '61 3 * * *': Error validating expression '61'",
        ),
        ({"schedule": {"timezone": "Mars/Base"}}, "schedule.timezone: 'Mars/Base' is not a known time zone"),
        ({"metadata": {"excerpt": {"policy": "always"}}}, "metadata.excerpt.policy: Input should be"),
        ({"surprise": 1}, "surprise: Extra inputs are not permitted"),
        (
            {"http": {"ca_bundle": "/nonexistent/ca.pem"}},
            "http.ca_bundle: '/nonexistent/ca.pem' is not a readable file",
        ),
    ],
)
def test_bad_values_name_their_dotted_path(data: dict[str, object], message: str) -> None:
    """An unknown key, a wrong type or an impossible value names the key's dotted path."""
    with pytest.raises(ConfigError) as excinfo:
        parse_settings(data)
    assert message in str(excinfo.value)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    """A config file that is a list is refused with a clear message."""
    path = tmp_path / "c.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match=r"c.yaml: \(top level\): must be a mapping"):
        load_settings(path)


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    """Broken YAML in the config is a ConfigError naming the file."""
    path = tmp_path / "c.yaml"
    path.write_text("http: {per_host_concurrency: [\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: not valid YAML"):
        load_settings(path)


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    """A section given twice is an error, not a silent "last one wins"."""
    path = tmp_path / "c.yaml"
    path.write_text("http:\n  max_concurrency: 5\nhttp:\n  max_concurrency: 6\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: not valid YAML: duplicate key 'http'"):
        load_settings(path)


def test_partial_threshold_keeps_the_other_default() -> None:
    """`hard: {runs: 1}` keeps the default days: every key is optional."""
    settings = parse_settings({"health": {"hard": {"runs": 1}, "soft": {"days": 2}}})
    assert (settings.health.hard.runs, settings.health.hard.days) == (1, 3)
    assert (settings.health.soft.runs, settings.health.soft.days) == (5, 2)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A --config path that does not exist is a ConfigError, not a traceback."""
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.yaml")


def test_overrides_win_and_are_validated() -> None:
    """CLI overrides replace file values and go through the same validation."""
    settings = with_overrides(Settings(), {"http.per_host_concurrency": 2, "corpus.roots": None})
    assert settings.http.per_host_concurrency == 2
    assert settings.corpus.roots == [Path("seeds")]
    with pytest.raises(ConfigError, match=r"http\.per_host_concurrency"):
        with_overrides(Settings(), {"http.per_host_concurrency": 0})


def test_state_url_must_name_postgresql(tmp_path: Path) -> None:
    """state.url accepts a postgresql:// URL and names the key for any other scheme."""
    path = tmp_path / "c.yaml"
    path.write_text("state:\n  url: postgresql://u@127.0.0.1/h\n", encoding="utf-8")
    assert load_settings(path).state.url == "postgresql://u@127.0.0.1/h"
    path.write_text("state:\n  url: sqlite:///x.db\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"state\.url: .*must be a postgresql://"):
        load_settings(path)
