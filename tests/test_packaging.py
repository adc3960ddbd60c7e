"""gatewayctl installs as people install tools: the sdist and the wheel built from it pass `twine check`,
`pipx install --global` of the wheel (into folders outside the repository) gives a gatewayctl that builds
the example estate exactly as the repository does and writes the report with the packaged control
mapping; the systemd units' Documentation= names the man page that install put in place; --version
names Python, the nftables binding and the WireGuard backends; bench/compare.py checks --output first.
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from gatewayctl import __version__
from gatewayctl.host.versions import kernel_module_state
from tests.conftest import AT, PROFILES, REPO, run_cli

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A process as a user runs it; its output is kept for the assertion messages."""
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
                          check=False)


@dataclass(frozen=True)
class Install:
    dist: Path
    gatewayctl: Path   # the command pipx linked
    man: Path          # PIPX_GLOBAL_MAN_DIR
    venv: Path         # the environment pipx made for gatewayctl
    work: Path         # a folder outside the repository to run in


def source_copy(target: Path) -> Path:
    """The repository's files as git lists them (tracked and new, not ignored): what a release is cut from."""
    listed = run("git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", cwd=REPO)
    assert listed.returncode == 0, listed.stderr
    for name in filter(None, listed.stdout.split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Install]:
    root = tmp_path_factory.mktemp("packaging")
    assert REPO not in root.parents
    source = source_copy(root / "src")
    # sdist first, then the wheel built from the unpacked sdist (build's default): a file missing
    # from the sdist is missing from the wheel. No isolation: the test venv's setuptools and wheel.
    built = run(sys.executable, "-m", "build", "--no-isolation", "-o", root / "dist", source, cwd=root)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    pipx = {"PIPX_GLOBAL_HOME": root / "opt", "PIPX_GLOBAL_BIN_DIR": root / "bin", "PIPX_GLOBAL_MAN_DIR": root / "man",
            "PIPX_HOME": root / "user", "PIPX_BIN_DIR": root / "user-bin", "PIPX_MAN_DIR": root / "user-man"}
    env = {**os.environ, **{k: str(v) for k, v in pipx.items()}}
    env.pop("PYTHONPATH", None)
    wheel = next((root / "dist").glob("*.whl"))
    # --system-site-packages: Debian's nftables binding (python3-nftables) is importable, as on a gateway
    done = run(sys.executable, "-m", "pipx", "install", "--global", "--system-site-packages", wheel, cwd=root, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    work = root / "work"
    shutil.copytree(PROFILES, work / "profiles")
    yield Install(root / "dist", root / "bin" / "gatewayctl", root / "man", root / "opt" / "venvs" / "gatewayctl", work)


def test_twine_accepts_the_sdist_and_the_wheel(installed: Install) -> None:
    files = sorted(installed.dist.iterdir())
    assert sorted(f.suffix for f in files) == [".gz", ".whl"]
    done = run(sys.executable, "-m", "twine", "check", "--strict", *files, cwd=installed.dist)
    assert done.returncode == 0 and done.stdout.count("PASSED") == 2, done.stdout + done.stderr


def test_the_wheel_holds_every_file_read_at_run_time(installed: Install) -> None:
    names = set(zipfile.ZipFile(next(installed.dist.glob("*.whl"))).namelist())
    data = f"gatewayctl-{__version__}.data/data/"
    templates = sorted(p.relative_to(REPO / "templates") for p in (REPO / "templates").rglob("*.j2"))
    assert len(templates) >= 20
    for template in templates:
        assert f"{data}share/gatewayctl/templates/{template}" in names, template
    assert "gatewayctl/report/controls.yaml" in names
    assert f"{data}share/man/man8/gatewayctl.8" in names and f"{data}share/doc/gatewayctl/operations.md" in names


def installed_run(installed: Install, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GATEWAYCTL_PROFILES", "VIRTUAL_ENV")}
    return run(installed.gatewayctl, *args, cwd=installed.work, env=env)


def test_the_installed_tool_is_the_installed_copy(installed: Install) -> None:
    done = run(installed.venv / "bin" / "python", "-c", "import gatewayctl, sys; print(gatewayctl.__file__)",
               cwd=installed.work)
    assert Path(done.stdout.strip()).is_relative_to(installed.venv), done.stdout + done.stderr


def test_the_installed_tool_builds_what_the_repository_builds(installed: Install, tmp_path: Path) -> None:
    done = installed_run(installed, "build", "-o", "out", "--at", AT)
    assert done.returncode == 0, done.stderr
    ours = run_cli("--profiles", str(installed.work / "profiles"), "build", "-o", str(tmp_path / "repo"), "--at", AT)
    assert ours.exit_code == 0, ours.stderr
    out = installed.work / "out"
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "repo") for p in (tmp_path / "repo").rglob("*") if p.is_file())
    assert len(files) >= 10 and any(f.parts[0] == "systemd" for f in files)
    for name in files:
        assert filecmp.cmp(out / name, tmp_path / "repo" / name, shallow=False), name
    # systemd's own check of the Documentation= pages: it runs man(1), here on the install's man folder
    units = sorted(str(p) for p in (out / "systemd").glob("*.service"))
    man_check = run("systemd-analyze", "verify", "--man=yes", *units, cwd=installed.work,
                    env={**os.environ, "MANPATH": str(installed.man)})
    assert "Command 'man" not in man_check.stderr, man_check.stderr
    man_check = run("systemd-analyze", "verify", "--man=yes", *units, cwd=installed.work,
                    env={**os.environ, "MANPATH": str(installed.work)})
    assert "Command 'man gatewayctl(8)' failed" in man_check.stderr, man_check.stderr  # the check can fail


def test_the_installed_report_uses_the_packaged_control_mapping(installed: Install) -> None:
    done = installed_run(installed, "report", "--offline", "--format", "json", "-o", "report.json")
    assert done.returncode in (0, 1), done.stderr     # 1: a control fails, a finding for the auditors
    report = json.loads((installed.work / "report.json").read_text())
    mapping = yaml.safe_load((REPO / "gatewayctl/report/controls.yaml").read_text())
    assert [(c["framework"], c["id"]) for c in report["controls"]] == [(c["framework"], c["id"]) for c in mapping["controls"]]
    ours = run_cli("--profiles", str(installed.work / "profiles"), "report", "--offline", "--format", "json")
    assert [c["status"] for c in report["controls"]] == [c["status"] for c in json.loads(ours.stdout)["controls"]]


def test_units_documentation_names_the_installed_man_page(installed: Install) -> None:
    units = sorted((REPO / "templates/systemd").glob("*.j2"))
    documented = [line.split("=", 1)[1] for u in units for line in u.read_text().splitlines()
                  if line.startswith("Documentation=")]
    assert len(documented) >= 5
    for uris in documented:
        for uri in uris.split():
            assert uri.startswith("man:"), uri            # the only kind an installation can put in place
            name, section = uri[4:].rstrip(")").split("(")
            page = installed.man / f"man{section}" / f"{name}.{section}"
            assert page.is_file(), uri
    page = installed.man / "man8" / "gatewayctl.8"
    rendered = run("man", "--warnings", "-l", page, cwd=installed.work, env={**os.environ, "MANWIDTH": "100"})
    assert rendered.returncode == 0 and rendered.stderr == "", rendered.stderr
    from gatewayctl.cli.main import COMMANDS

    for command in COMMANDS:
        if not command.startswith("_"):
            assert re.search(rf"^ {{7}}{re.escape(command)}(\n| )", rendered.stdout, re.M), command


def test_the_installed_version_names_python_nftables_and_wireguard(installed: Install) -> None:
    lines = installed_run(installed, "--version").stdout.splitlines()
    python = run(installed.venv / "bin" / "python", "-c", "import platform; print(platform.python_version())",
                 cwd=installed.work).stdout.strip()
    assert lines[0] == f"gatewayctl, version {__version__}" and lines[1].startswith(f"Python {python} ")
    assert lines[2].startswith("nftables binding: ")
    nft = run("nft", "--version", cwd=installed.work).stdout.strip() if shutil.which("nft") else "nft not found"
    assert lines[2].endswith(f"; {nft}"), lines[2]
    if Path("/usr/lib/python3/dist-packages/nftables").is_dir():
        assert "not importable" not in lines[2], lines[2]   # the binding a gateway needs for apply
    binary = shutil.which("wireguard-go")
    assert lines[3].startswith("WireGuard: kernel module ")
    if binary:
        version = run(binary, "--version", cwd=installed.work).stdout.split()[1]
        assert lines[3].endswith(f"; wireguard-go {version} ({binary})"), lines[3]
    else:
        assert lines[3].endswith("; wireguard-go not found"), lines[3]


def test_kernel_module_state(tmp_path: Path) -> None:
    sys_module, lib = tmp_path / "sys/wireguard", tmp_path / "lib/modules"
    assert kernel_module_state(sys_module, lib, "6.1.0") == "absent"
    (lib / "6.1.0/kernel/drivers/net/wireguard").mkdir(parents=True)
    (lib / "6.1.0/kernel/drivers/net/wireguard/wireguard.ko.xz").write_bytes(b"")
    assert kernel_module_state(sys_module, lib, "6.1.0") == "available, not loaded"
    (lib / "6.2.0").mkdir()
    (lib / "6.2.0/modules.builtin").write_text("kernel/lib/zlib.ko\nkernel/drivers/net/wireguard/wireguard.ko\n")
    assert kernel_module_state(sys_module, lib, "6.2.0") == "built in"
    sys_module.mkdir(parents=True)
    assert kernel_module_state(sys_module, lib, "6.1.0") == "loaded"
    (sys_module / "version").write_text("1.0.0\n")
    assert kernel_module_state(sys_module, lib, "6.1.0") == "loaded (version 1.0.0)"


# --- bench/compare.py --output --------------------------------------------------------------------------

@pytest.fixture
def compare(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """bench/compare.py with its measurements replaced by stubs that record that they ran."""
    monkeypatch.syspath_prepend(str(REPO))
    import bench.compare as module
    import bench.results_md

    measured: list[str] = []
    monkeypatch.setattr(module.os, "geteuid", lambda: 0)
    monkeypatch.setattr(module, "aerleon", lambda: measured.append("aerleon"))
    monkeypatch.setattr(module, "versions", lambda: {})
    monkeypatch.setattr(module, "control_plane", lambda n, runs: measured.append(f"control {n}") or {})
    monkeypatch.setattr(module, "data_plane", lambda sizes, runs, connections: measured.append("data") or [])
    monkeypatch.setattr(bench.results_md, "render", lambda results: "# results\n")
    yield measured


def test_compare_creates_a_missing_output_folder(compare: list[str], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.compare

    target = tmp_path / "not" / "yet"
    monkeypatch.setattr(sys, "argv", ["compare.py", "--sizes", "1", "--dataplane", "", "--per-packet-rounds", "0",
                                      "--output", str(target)])
    bench.compare.main()
    assert compare == ["aerleon", "control 1", "data"]
    assert (target / "results.md").read_text() == "# results\n" and json.loads((target / "results.json").read_text())


def test_compare_refuses_an_unwritable_output_before_measuring(compare: list[str], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    import bench.compare

    (tmp_path / "file").write_text("")
    monkeypatch.setattr(sys, "argv", ["compare.py", "--output", str(tmp_path / "file" / "out")])
    with pytest.raises(SystemExit) as stop:
        bench.compare.main()
    assert stop.value.code == 2 and compare == []
    assert f"--output '{tmp_path / 'file' / 'out'}'" in capsys.readouterr().err


# --- the README's cert verify example ---------------------------------------------------------------------

def test_readme_cert_verify_example_works_as_written() -> None:
    lines = [line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("gatewayctl cert verify ")]
    assert len(lines) == 2
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("GATEWAYCTL_PROFILES", None)
    results = [run("bash", "-c", line, cwd=REPO, env=env) for line in lines]
    renew = "expired? renew with docs/examples/make-cert-sample.py"
    assert results[0].returncode == 0 and results[0].stdout.startswith("accepted: CN=alice "), (renew, results[0].stdout)
    assert results[1].returncode == 1 and "revoked on" in results[1].stdout, (renew, results[1].stdout)
    shipped = [REPO / "profiles/ca/globex-issuing-ca.pem", *sorted((REPO / "docs/examples").glob("globex-*"))]
    assert len(shipped) == 4
    for path in shipped:
        assert b"PRIVATE KEY" not in path.read_bytes(), path
