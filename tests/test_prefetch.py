"""The parse helper (gatewayctl/loader/prefetch.py) changes how fast an estate loads, never what it loads to.

Each case runs in a fresh interpreter: the helper forks, and a test process may have threads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gatewayctl.errors import ProfileError, display_path
from gatewayctl.loader import prefetch
from gatewayctl.synth import write_estate

PARTNERS = 90

SCRIPT = r"""
import json, os, sys, time
from pathlib import Path
from gatewayctl.loader import prefetch
from gatewayctl.loader.profiles import load_estate

root, mode = Path(sys.argv[1]), sys.argv[2]

def snapshot(partial):
    return {"partners": [(l.doc.shown_path, l.model.model_dump(mode="json")) for l in partial.partners],
            "errors": [str(e) for e in partial.errors]}

def fail_in_the_helper(name):  # prefetch.<name> raises in the helper process only
    parent, real = os.getpid(), getattr(prefetch, name)
    def failing(*args):
        if os.getpid() != parent:
            raise RuntimeError(f"the helper fails in {name}")
        return real(*args)
    setattr(prefetch, name, failing)

if mode == "helper-fails":
    fail_in_the_helper("_parse")
if mode == "listing-fails":
    fail_in_the_helper("partner_files")
prefetch.start(root)
forked = prefetch._pending is not None
if mode == "late":
    time.sleep(1.0)  # the helper has parsed everything before the parent arrives
if mode == "listing-changed":
    while prefetch._SLOT.unpack_from(prefetch._pending.shared, prefetch._LISTED)[0] == prefetch._NOT_YET:
        time.sleep(0.001)  # the helper has listed the folder
    (root / "partners" / "zz-added.yaml").write_text((root / "partners" / "p00001.yaml").read_text().replace("p00001", "zz-added"))
helped = snapshot(load_estate(root))
split = dict(prefetch.last_split)
os.environ[prefetch.ENV_SWITCH] = "off"
serial = snapshot(load_estate(root))
print(json.dumps({"forked": forked, "equal": helped == serial, "split": split, "partners": len(serial["partners"]),
                  "helped_partners": len(helped["partners"]), "errors": serial["errors"]}))
"""


@pytest.fixture
def estate(tmp_path: Path) -> Path:
    """A synthetic estate with bad files at both ends of the listing (the helper's end and the parent's)."""
    root = write_estate(tmp_path / "estate", PARTNERS)
    partners = root / "partners"
    (partners / "a-syntax.yaml").write_text("id: a-syntax\nname: [unclosed\n")
    (partners / "notes.txt").write_text("not a profile\n")
    (partners / "a-utf8.yaml").write_bytes(b"id: a-utf8\nname: \xff\xfe\n")
    (partners / "zz-schema.yaml").write_text((partners / "p00002.yaml").read_text().replace("p00002", "zz-schema")
                                             .replace("stage:", "colour: red\nstage:"))
    return root


def run(estate: Path, mode: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != prefetch.ENV_SWITCH}
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(estate), mode], capture_output=True, text=True,
                            env=env, timeout=120, check=True)
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def check_errors(errors: list[str]) -> None:
    assert [e.split("/partners/")[1].split(" (")[0] for e in errors] == [
        "a-syntax.yaml:3: YAML syntax error: did not find expected ',' or ']'",
        "a-utf8.yaml:2: file is not valid UTF-8: byte b'\\xff\\xfe\\n' at offset 17",
        "notes.txt: partner profiles must end in .yaml; this file would be ignored",
        "zz-schema.yaml:3: colour: unknown field"]


def test_both_sides_parse_and_meet(estate: Path) -> None:
    outcome = run(estate, "immediate")
    assert outcome["forked"] and outcome["equal"]
    assert outcome["partners"] == PARTNERS and len(outcome["errors"]) == 4
    check_errors(outcome["errors"])
    split = outcome["split"]
    assert split["helper"] + split["parent"] + split["afterwards"] == PARTNERS + 3, split


def test_a_helper_that_finished_first_gives_every_file(estate: Path) -> None:
    outcome = run(estate, "late")
    assert outcome["forked"] and outcome["equal"]
    assert outcome["split"] == {"helper": PARTNERS + 3, "parent": 0, "afterwards": 0}
    check_errors(outcome["errors"])


def test_a_failing_helper_is_replaced_by_the_parent(estate: Path) -> None:
    outcome = run(estate, "helper-fails")
    assert outcome["forked"] and outcome["equal"]
    assert outcome["split"]["helper"] == 0
    assert outcome["split"]["parent"] + outcome["split"]["afterwards"] == PARTNERS + 3
    check_errors(outcome["errors"])


def test_a_helper_that_fails_before_listing_leaves_everything_to_the_parent(estate: Path) -> None:
    outcome = run(estate, "listing-fails")
    assert outcome["forked"] and outcome["equal"]
    assert outcome["split"] == {}  # the helper gave nothing: the parent listed and parsed every file
    assert outcome["partners"] == PARTNERS
    check_errors(outcome["errors"])


def test_the_folder_is_listed_once_by_the_helper(estate: Path) -> None:
    outcome = run(estate, "listing-changed")  # a file added after the helper started
    assert outcome["forked"] and not outcome["equal"]
    assert outcome["helped_partners"] == PARTNERS and outcome["partners"] == PARTNERS + 1  # seen by the next load
    assert sum(outcome["split"].values()) == PARTNERS + 3


def test_small_estates_and_the_switch_do_not_fork(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = write_estate(tmp_path / "small", prefetch.MIN_FILES - 1)
    prefetch.start(small)
    assert prefetch._pending is None
    monkeypatch.setenv(prefetch.ENV_SWITCH, "off")
    prefetch.start(write_estate(tmp_path / "large", prefetch.MIN_FILES))
    assert prefetch._pending is None


def test_build_output_is_the_same_with_and_without_the_helper(estate: Path, tmp_path: Path) -> None:
    for name in ("a-syntax.yaml", "a-utf8.yaml", "zz-schema.yaml", "notes.txt"):
        (estate / "partners" / name).unlink()
    outputs = {}
    for switch in ("on", "off"):
        env = {**os.environ, prefetch.ENV_SWITCH: switch}
        out = tmp_path / f"out-{switch}"
        subprocess.run([sys.executable, "-m", "gatewayctl", "-q", "-p", str(estate), "build", "-o", str(out),
                        "--at", "2026-12-01"], env=env, check=True, timeout=120)
        outputs[switch] = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    # one config per partner; the gateway's WireGuard config, ruleset, the report service and timer, 3 boot
    # units and the build record
    assert len(outputs["on"]) == PARTNERS + 8 and outputs["on"] == outputs["off"]


def test_the_command_reaps_its_helper_when_it_fails_before_loading(estate: Path) -> None:
    """A command that stops before loading (a bad --at) kills and reaps the helper it forked."""
    probe = ("import os, sys\nfrom gatewayctl.cli.main import cli\nfrom gatewayctl.loader import prefetch\n"
             "real = prefetch.start\n"
             "def start(root):\n    real(root)\n    print('forked' if prefetch._pending else 'not forked')\n"
             "prefetch.start = start\n"
             f"try:\n    cli.main(['-p', {str(estate)!r}, 'validate', '--at', 'not-a-date'], standalone_mode=False)\n"
             "except Exception as exc:\n    print(type(exc).__name__)\n"
             "try:\n    os.waitpid(-1, os.WNOHANG)\n    print('child left')\nexcept ChildProcessError:\n    print('no child')\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.split() == ["forked", "BadParameter", "no", "child"], result


def reference_listing(root: Path, errors: list[str]) -> list[Path]:
    """The listing as it was first written (pathlib's rglob), with links refused: the fast one must agree with it."""
    files = []
    for path in sorted((root / "partners").rglob("*")):
        if path.name.startswith(".") or path.suffix == ".md" or (path.is_dir() and not path.is_symlink()):
            continue
        if path.suffix != ".yaml" or path.is_symlink():
            errors.append(path.name)
            continue
        files.append(path)
    return files


def test_the_listing_rules(tmp_path: Path) -> None:
    partners = tmp_path / "partners"
    for name in ("b.yaml", "a.yaml", ".hidden.yaml", "README.md", "notes.txt", "sub/z.yaml", "sub/deeper/c.yaml",
                 ".git/config.yaml", "sub-a/d.yaml", "A.yaml"):
        (partners / name).parent.mkdir(parents=True, exist_ok=True)
        (partners / name).write_text("id: x\n")
    (partners / "link-to-sub").symlink_to(partners / "sub")  # links are never followed: each is an error
    (partners / "link.yaml").symlink_to(partners / "a.yaml")
    (partners / "broken.yaml").symlink_to(partners / "missing.yaml")
    errors: list[ProfileError] = []
    files = prefetch.partner_files(tmp_path, errors)
    expected_errors: list[str] = []
    assert files == reference_listing(tmp_path, expected_errors)
    assert [str(f.relative_to(partners)) for f in files] == [
        ".git/config.yaml", "A.yaml", "a.yaml", "b.yaml", "sub/deeper/c.yaml", "sub/z.yaml", "sub-a/d.yaml"]
    assert [Path(e.path).name for e in errors] == expected_errors == ["broken.yaml", "link-to-sub", "link.yaml", "notes.txt"]
    assert all("symbolic link" in e.message for e in errors if Path(e.path).name.startswith(("link", "broken")))
    assert prefetch.shown_paths(tmp_path, files)[-1] == f"{display_path(tmp_path)}/partners/sub-a/d.yaml"
