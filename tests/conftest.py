"""Shared fixtures: a copy of the example estate, the CLI runner, root-only helpers."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gatewayctl.cli.main import cli

REPO = Path(__file__).resolve().parent.parent
PROFILES = REPO / "profiles"
# Golden files and most tests evaluate the example estate at this fixed instant.
AT = "2026-12-01"
AT_DT = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


@pytest.fixture
def estate(tmp_path: Path) -> Path:
    """A writable copy of the example estate."""
    target = tmp_path / "profiles"
    shutil.copytree(PROFILES, target)
    return target


def run_cli(*args: str) -> Result:
    """Run gatewayctl in-process; stdout and stderr are kept apart."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def needs_root() -> None:
    """Root tests run wherever root is available; in CI their absence is a failure, never a skip."""
    missing = [tool for tool in ("nft", "ip", "wireguard-go", "wg") if shutil.which(tool) is None]
    if os.geteuid() != 0 or missing:
        reason = f"needs root and {', '.join(missing) or 'nothing else'}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must provide it")
        pytest.skip(reason)


@pytest.fixture
def netns(needs_root: None) -> Iterator[str]:
    """A fresh network namespace, removed afterwards."""
    from tests.netns import Namespace

    with Namespace.create("gwt") as ns:
        yield ns.name
