"""Batch commands run as the gatewayctl program end with os._exit and without the cyclic collector
(gatewayctl/cli/main.py): their exit status and every byte of their output must be what they were."""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from gatewayctl.synth import write_estate
from tests.conftest import AT, PROFILES, run_cli

GATEWAYCTL = [sys.executable, "-m", "gatewayctl"]
# the same commands through click alone: no os._exit, the collector on, the interpreter's own exit
ORDINARY = [sys.executable, "-c", "import sys; from gatewayctl.cli.main import cli; cli.main(sys.argv[1:], prog_name='gatewayctl')"]


def program(*args: str, stdout: int = subprocess.PIPE, how: list[str] = GATEWAYCTL) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*how, *args], stdout=stdout, stderr=subprocess.PIPE, timeout=120, check=False)


def test_output_is_complete_and_the_status_kept() -> None:
    schema = program("schema")
    assert schema.returncode == 0 and len(schema.stdout) > 30_000
    json.loads(schema.stdout)  # every byte flushed before the process ended
    for args, status in ((["lint", "--format", "sarif", "--fail-on", "warning"], 1), (["lint", "--format", "json"], 0),
                         (["test"], 0)):
        fast, ordinary = (program("-p", str(PROFILES), *args, "--at", AT, how=how) for how in (GATEWAYCTL, ORDINARY))
        assert (fast.returncode, fast.stdout, fast.stderr) == (ordinary.returncode, ordinary.stdout, ordinary.stderr)
        assert fast.returncode == status and fast.stdout
    assert json.loads(program("-p", str(PROFILES), "lint", "--format", "sarif", "--at", AT).stdout)["runs"][0]["results"]


def test_errors_reach_stderr_with_status_2(tmp_path: Path) -> None:
    estate = tmp_path / "estate"
    shutil.copytree(PROFILES, estate)
    (estate / "partners" / "acme.yaml").write_text("id: acme\nname: [unclosed\n")
    result = program("-p", str(estate), "validate", "--at", AT)
    assert result.returncode == 2
    assert b"partners/acme.yaml:3: YAML syntax error" in result.stderr
    assert result.stderr.rstrip().endswith(b"nothing was built or changed")


def test_a_closed_pipe_ends_the_command_as_it_ordinarily_would() -> None:
    """The reader has gone away (`gatewayctl schema | true`): the same status and messages either way."""
    outcomes = []
    for how in (GATEWAYCTL, ORDINARY):
        read, write = os.pipe()
        os.close(read)
        try:
            result = subprocess.run([*how, "schema"], stdout=write, stderr=subprocess.PIPE, timeout=60, check=False)
        finally:
            os.close(write)
        outcomes.append((result.returncode, result.stderr))
    assert outcomes[0] == outcomes[1] and outcomes[0][0] != 0, outcomes


def test_a_large_build_writes_every_file(tmp_path: Path) -> None:
    estate = write_estate(tmp_path / "estate", 120)
    result = program("-p", str(estate), "build", "-o", str(tmp_path / "out"), "--at", AT)
    assert result.returncode == 0, result.stderr
    # 120 partner configs; the gateway's WireGuard config and ruleset; the report service and timer; 3 boot units
    assert result.stdout.decode().splitlines()[-1] == f"built {120 + 2 + 2 + 3} artifacts in {tmp_path / 'out'}"
    assert len(list((tmp_path / "out" / "partners").rglob("*.conf"))) == 120


def test_in_process_the_collector_is_left_as_found() -> None:
    assert gc.isenabled()
    result = run_cli("--profiles", str(PROFILES), "validate", "--at", AT)
    assert result.exit_code == 0 and gc.isenabled()
