"""Packaging: licence, metadata, `--version`, and a User-Agent that names the tool and a contact."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from localsite import LocalSite, make_settings

import pipeline
from pipeline.check import check_links_sync

REPO = Path(__file__).resolve().parent.parent


def test_pyproject_declares_licence_urls_and_classifiers() -> None:
    """pyproject.toml names the MIT licence (LICENSE ships), project URLs and trove classifiers."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "MIT"
    assert (REPO / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    assert project["urls"]
    assert "Programming Language :: Python :: 3.11" in project["classifiers"]


def test_version_names_distribution_version_and_location(tmp_path: Path) -> None:
    """`pipeline --version` prints the distribution name, its version and where the package lives."""
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "--version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert result.stdout.startswith(f"link-pipeline {pipeline.__version__} ")
    assert str(Path(pipeline.__file__).parent) in result.stdout


def test_default_user_agent_names_tool_version_and_contact(local_site: LocalSite, tmp_path: Path) -> None:
    """The default User-Agent is `link-pipeline/<version> (+<http.contact>; …)`, sent on every request."""
    local_site.route("/ua", status=200)
    settings = make_settings(tmp_path, http={"contact": "mailto:links@example.org"})
    check_links_sync([local_site.url("/ua")], settings)
    agents = {{k.lower(): v for k, v in hit.headers.items()}["user-agent"] for hit in local_site.hits}
    assert agents == {
        f"link-pipeline/{pipeline.__version__} (+mailto:links@example.org; link health checker)"
    }
    assert "no contact set" in make_settings(tmp_path).http.agent
