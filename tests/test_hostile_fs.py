"""Hostile files and folders (issue 15, points 5, 6, 7, 9 and 10): output written through links, input
read through links, FIFOs and devices, dates past what nftables can hold, deep nesting, bidi and
line-separator characters in free text, unexpected exceptions, and a swappable template cache."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import AT, run_cli
from tests.netns import sh


def line_of(path: Path, needle: str) -> int:
    """The 1-based line of the first line of `path` containing `needle` (from the test's own data)."""
    return next(i for i, text in enumerate(path.read_text().splitlines(), 1) if needle in text)


def program(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """gatewayctl as its own process, as CI runs it."""
    return subprocess.run([sys.executable, "-m", "gatewayctl", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120, check=False)


# --- 9: dates every accepted value of which loads into nft -------------------------------------------------


@pytest.mark.parametrize("command", [["validate"], ["build", "-o", "OUT"], ["lint"]])
def test_a_date_in_year_9999_is_bad_input_not_a_crash(estate: Path, tmp_path: Path, command: list[str]) -> None:
    acme = estate / "partners/acme.yaml"
    acme.write_text(acme.read_text().replace("expires: 2027-12-31", "expires: 9999-12-31", 1))
    line = line_of(acme, "9999-12-31")
    args = [str(tmp_path / "out") if part == "OUT" else part for part in command]
    result = program("--profiles", str(estate), *args, "--at", AT)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"partners/acme.yaml:{line}: agreement.expires: must be a date from 1970-01-01 to 2100-12-31" in result.stderr
    assert "'9999-12-31'" in result.stderr


@pytest.mark.parametrize("value", ["2101-01-01", "2611-06-01", "1969-12-31"])
def test_dates_outside_the_horizon_are_refused_everywhere(estate: Path, value: str) -> None:
    acme = estate / "partners/acme.yaml"
    text = acme.read_text().replace("review_by: 2027-06-30", f"review_by: {value}")
    acme.write_text(text.replace("    expires: 2027-03-31", f"    expires: {value}"))
    result = run_cli("--profiles", str(estate), "validate", "--at", AT)
    assert result.exit_code == 2
    assert f"partners/acme.yaml:{line_of(acme, 'review_by')}: review_by: must be a date from" in result.stderr
    assert f"partners/acme.yaml:{line_of(acme, '    expires: ' + value)}: grants[2].expires: must be" in result.stderr


def test_the_last_day_of_the_horizon_builds_a_ruleset_nft_accepts(estate: Path, tmp_path: Path, needs_root: None) -> None:
    acme = estate / "partners/acme.yaml"
    acme.write_text(acme.read_text().replace("2027-12-31", "2100-12-31").replace("2027-03-31", "2100-12-31"))
    gateway = estate / "gateway.yaml"  # no stage ceiling: the grant runs to the horizon
    gateway.write_text("".join(line for line in gateway.read_text().splitlines(True) if "max_grant_days" not in line))
    result = run_cli("--profiles", str(estate), "build", "-o", str(tmp_path / "out"), "--at", "1970-01-01")
    assert result.exit_code == 0, result.stderr
    ruleset = tmp_path / "out/nftables/gatewayctl.nft"
    days = (dt.date(2101, 1, 1) - dt.date(1970, 1, 1)).days  # the end of the last day, from --at
    assert f"timeout {days}d" in ruleset.read_text()
    check = sh("nft", "-c", "-f", str(ruleset), check=False)
    assert check.returncode == 0, check.stderr


def test_the_schema_states_the_date_horizon() -> None:
    schema = json.loads(run_cli("schema", "--kind", "partner").stdout)
    expires = schema["$defs"]["Agreement"]["properties"]["expires"]
    assert (expires["formatMinimum"], expires["formatMaximum"]) == ("1970-01-01", "2100-12-31")


# --- 7: free text cannot reorder or break the text around it ------------------------------------------------

BAD_CHARACTERS = ["\u202e", "\u202a", "\u2066", "\u2069", "\u200e", "\u200f", "\u061c", "\u2028", "\u2029",
                  "\u0085", "\u0080", "\u009f", "\x1b", "\x7f"]


@pytest.mark.parametrize("char", BAD_CHARACTERS, ids=[f"U+{ord(c):04X}" for c in BAD_CHARACTERS])
@pytest.mark.parametrize("field", ["name: ", "  reference: ", "    justification: ", "    approved_by: "])
def test_bidi_and_separator_characters_are_refused_in_free_text(estate: Path, char: str, field: str) -> None:
    acme = estate / "partners/acme.yaml"
    lines = acme.read_text().splitlines()
    index = next(i for i, text in enumerate(lines) if text.startswith(field))
    lines[index] = field + json.dumps(f"safe{char}txet")  # escaped: YAML's reader passes every one to the schema
    acme.write_text("\n".join(lines) + "\n")
    result = run_cli("--profiles", str(estate), "validate", "--at", AT)
    assert result.exit_code == 2
    assert f"partners/acme.yaml:{index + 1}: " in result.stderr
    assert "bidirectional controls" in result.stderr


@pytest.mark.parametrize("char", ["\u202e", "\u2028", "\u0085", "\u2067"])
def test_descriptions_refuse_them_too_but_keep_newlines(estate: Path, char: str) -> None:
    acme = estate / "partners/acme.yaml"
    text = acme.read_text()
    for description, status in (("ok\n\tline two", 0), (f"ok\na{char}b", 2)):
        acme.write_text(text.replace("name: ACME Logistics GmbH\n", f"name: ACME\ndescription: {json.dumps(description)}\n"))
        result = run_cli("--profiles", str(estate), "validate", "--at", AT)
        assert result.exit_code == status, result.stderr
    assert f"partners/acme.yaml:{line_of(acme, 'description')}: description: must be text without control" in result.stderr


def test_ordinary_unicode_text_is_still_accepted(estate: Path) -> None:
    acme = estate / "partners/acme.yaml"
    acme.write_text(acme.read_text().replace("name: ACME Logistics GmbH", "name: Société Générale ACME 日本 \u00a0 ü"))
    result = run_cli("--profiles", str(estate), "validate", "--at", AT)
    assert result.exit_code == 0, result.stderr


# --- 9: nesting depth ----------------------------------------------------------------------------------------


def deep_flow(levels: int) -> str:
    return "[" * levels + "]" * levels


def deep_block(levels: int) -> str:
    return "".join(f"{' ' * (2 * i)}- k:\n" for i in range(levels // 2)) + f"{' ' * levels}- x\n"


@pytest.mark.parametrize("levels", [3000, 200_000])
@pytest.mark.parametrize("shape", ["flow", "compact"])
def test_deep_nesting_is_a_clear_error_not_a_traceback_or_a_crash(estate: Path, levels: int, shape: str) -> None:
    value = deep_flow(levels) if shape == "flow" else "- " * levels + "x"
    (estate / "partners/deep.yaml").write_text(f"id: deep\nname: ok\nextra:\n  - {value}\n")
    result = program("--profiles", str(estate), "validate", "--at", AT)
    assert result.returncode == 2, result.stderr[-500:]  # a segfault is -11, a traceback 1
    assert "Traceback" not in result.stderr
    assert "partners/deep.yaml:4: nesting is deeper than 64 levels" in result.stderr


def test_deep_block_nesting_by_indentation(estate: Path) -> None:
    (estate / "partners/deep.yaml").write_text("id: deep\nitems:\n" + deep_block(1500))
    result = program("--profiles", str(estate), "validate", "--at", AT)
    assert result.returncode == 2, result.stderr[-500:]
    # the root mapping, then a sequence and a mapping per line: the 65th level opens on line 2 + 32
    assert "partners/deep.yaml:34: nesting is deeper than 64 levels" in result.stderr


def test_nesting_up_to_the_limit_reaches_the_schema(estate: Path) -> None:
    from gatewayctl.loader.yaml12 import MAX_DEPTH, read_document

    path = estate / "partners/deep.yaml"
    path.write_text(f"id: deep\nname: {deep_flow(MAX_DEPTH - 1)}\n")  # the file's mapping is one level
    assert read_document(path, "deep.yaml").data["name"] == json.loads(deep_flow(MAX_DEPTH - 1))
    result = run_cli("--profiles", str(estate), "validate", "--at", AT)
    assert "partners/deep.yaml:2: name: Input should be a valid string" in result.stderr
    path.write_text(f"id: deep\nname: {deep_flow(MAX_DEPTH)}\n")
    result = run_cli("--profiles", str(estate), "validate", "--at", AT)
    assert "partners/deep.yaml:2: nesting is deeper than 64 levels" in result.stderr


def test_implicit_mappings_in_flow_sequences_count_twice(estate: Path) -> None:
    path = estate / "partners/deep.yaml"
    path.write_text("id: deep\nname: " + "[a: " * 40 + "x" + "]" * 40 + "\n")  # 80 levels from 40 brackets
    result = run_cli("--profiles", str(estate), "validate", "--at", AT)
    assert "partners/deep.yaml:2: nesting is deeper than 64 levels" in result.stderr


# --- 6: reading input never follows a link out -------------------------------------------------------------

SECRET = "root:$y$j9T$Zm9yZ2VkLWhhc2g$c2VjcmV0LWxpbmUtb2Ytc2hhZG93:19000:0:99999:7:::"


def secret_file(tmp_path: Path) -> Path:
    """A file outside the profiles folder, full of lines that must never be printed."""
    path = tmp_path / "shadow"
    path.write_text(f"{SECRET}\nid: hunter2-secret\nname: [hunter2-secret]\nhunter2-key: 1\n")
    return path


def validate_quickly(estate: Path) -> subprocess.CompletedProcess[str]:
    result = program("--profiles", str(estate), "validate", "--at", AT)  # a timeout here would be the FIFO hanging
    assert "Traceback" not in result.stderr
    return result


@pytest.mark.parametrize("target", ["partners/evil.yaml", "gateway.yaml", "services.yaml"])
def test_a_link_to_a_secret_file_is_refused_and_never_printed(estate: Path, tmp_path: Path, target: str) -> None:
    (estate / target).unlink(missing_ok=True)
    (estate / target).symlink_to(secret_file(tmp_path))
    result = validate_quickly(estate)
    assert result.returncode == 2
    assert f"{target}: is a symbolic link" in result.stderr
    assert "hunter2" not in result.stderr and "j9T" not in result.stderr


def test_links_to_folders_are_refused(estate: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.yaml").write_text(f"id: x\nname: {SECRET}\n")
    (estate / "partners/sub").symlink_to(outside)
    result = validate_quickly(estate)
    assert result.returncode == 2
    assert "partners/sub: is a symbolic link" in result.stderr
    assert "j9T" not in result.stderr


def test_a_linked_partners_folder_is_refused(estate: Path, tmp_path: Path) -> None:
    (estate / "partners").rename(tmp_path / "elsewhere")
    (estate / "partners").symlink_to(tmp_path / "elsewhere")
    result = validate_quickly(estate)
    assert result.returncode == 2
    assert "partners: the partners folder is a symbolic link" in result.stderr


def test_a_fifo_is_refused_without_waiting(estate: Path) -> None:
    os.mkfifo(estate / "partners/fifo.yaml")
    os.unlink(estate / "services.yaml")
    os.mkfifo(estate / "services.yaml")
    result = validate_quickly(estate)
    assert result.returncode == 2
    assert "partners/fifo.yaml: is a FIFO (named pipe); profile input must be regular files" in result.stderr
    assert "services.yaml: is a FIFO (named pipe)" in result.stderr


def test_a_device_is_refused_without_reading(estate: Path, tmp_path: Path, needs_root: None) -> None:
    os.mknod(estate / "partners/zero.yaml", 0o600 | 0o020000, os.makedev(1, 5))  # a character device: /dev/zero
    (estate / "partners/dev-zero.yaml").symlink_to("/dev/zero")
    result = validate_quickly(estate)
    assert result.returncode == 2
    assert "partners/zero.yaml: is a character device" in result.stderr
    assert "partners/dev-zero.yaml: is a symbolic link" in result.stderr


def test_the_parse_helper_refuses_the_same_files(estate: Path, tmp_path: Path) -> None:
    from gatewayctl.loader import prefetch

    acme = (estate / "partners/acme.yaml").read_text()
    for index in range(prefetch.MIN_FILES + 6):  # enough files for the helper to fork
        (estate / f"partners/a{index:03d}.yaml").write_text(acme.replace("id: acme", f"id: a{index:03d}"))
    (estate / "partners/a000.yaml").unlink()
    (estate / "partners/a000.yaml").symlink_to(secret_file(tmp_path))  # the helper's end of the listing
    (estate / "partners/a001.yaml").unlink()
    os.mkfifo(estate / "partners/a001.yaml")
    script = ("import json, sys; from pathlib import Path; from gatewayctl.loader import prefetch;"
              "from gatewayctl.loader.profiles import load_estate; root = Path(sys.argv[1]); prefetch.start(root);"
              "forked = prefetch._pending is not None; import time; time.sleep(0.5); partial = load_estate(root);"
              "print(json.dumps({'forked': forked, 'split': prefetch.last_split, 'errors': [str(e) for e in partial.errors]}))")
    env = {k: v for k, v in os.environ.items() if k != prefetch.ENV_SWITCH}
    done = subprocess.run([sys.executable, "-c", script, str(estate)], capture_output=True, text=True, env=env,
                          timeout=60, check=True)
    outcome = json.loads(done.stdout)
    assert outcome["forked"] and outcome["split"]["helper"] > 0
    errors = [e for e in outcome["errors"] if "/a00" in e]
    assert [e.split("/partners/")[1] for e in errors] == [
        "a000.yaml: is a symbolic link; profile input must be regular files and folders inside the profiles folder "
        "(links are never followed)",
        "a001.yaml: is a FIFO (named pipe); profile input must be regular files"]
    assert "hunter2" not in done.stdout


def test_long_values_from_the_file_are_shortened_in_messages(estate: Path) -> None:
    long_key, long_value = "k" * 1000, "v" * 5000  # libyaml's longest key is 1024 characters
    acme = estate / "partners/acme.yaml"
    acme.write_text(acme.read_text() + f"{long_key}: {long_value}\n")
    (estate / "partners/dup.yaml").write_text(f"id: dup\n{long_key}: 1\n{long_key}: 2\n")
    result = run_cli("--profiles", str(estate), "validate", "--at", AT)
    assert result.exit_code == 2
    assert max(len(line) for line in result.stderr.splitlines()) < 400
    assert f"partners/acme.yaml:{line_of(acme, long_key)}: 'kkkkkkkkkk" in result.stderr and "unknown field" in result.stderr
    assert "partners/dup.yaml:3: duplicate key 'kkkkkkkkk" in result.stderr


def test_the_safe_open_helper_for_ca_files(tmp_path: Path) -> None:
    from gatewayctl.loader.safefs import UnsafeFile, read_regular

    root = tmp_path / "profiles"
    (root / "ca").mkdir(parents=True)
    (root / "ca/good.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    assert read_regular(root / "ca/good.pem", root=root) == b"-----BEGIN CERTIFICATE-----\n"
    (root / "linked").symlink_to(root / "ca")
    (root / "ca/key.pem").symlink_to(secret_file(tmp_path))
    for path, reason in ((root / "linked/good.pem", "its folder 'linked' is a symbolic link"),
                         (root / "ca/key.pem", "is a symbolic link"),
                         (root / "ca/../ca/good.pem", "is not a file inside the profiles folder"),
                         (tmp_path / "shadow", "is outside the profiles folder")):
        with pytest.raises(UnsafeFile) as refused:
            read_regular(path, root=root)
        assert str(refused.value.strerror).startswith(reason), refused.value.strerror
    with pytest.raises(UnsafeFile, match="file is 28 bytes; a profile file may be at most 10 bytes"):
        read_regular(root / "ca/good.pem", 10, root=root)


# --- 5: writing output never follows a link ----------------------------------------------------------------


def build(estate: Path, out: Path) -> subprocess.CompletedProcess[str]:
    result = program("--profiles", str(estate), "build", "-o", str(out), "--at", AT)
    assert "Traceback" not in result.stderr
    return result


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder the build must never touch, with a file in it."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "victim.conf").write_text("precious\n")
    return folder


def test_a_planted_manifest_cannot_delete_outside_the_output_folder(estate: Path, tmp_path: Path, outside: Path) -> None:
    out = tmp_path / "out"
    assert build(estate, out).returncode == 0
    (out / "partners/evil").symlink_to(outside)
    (tmp_path / "victim2").write_text("precious\n")
    (out / ".gatewayctl-build.json").write_text(json.dumps({"files": [
        "partners/evil/victim.conf", "../victim2", str(tmp_path / "victim2"), "partners/../../victim2"]}))
    result = build(estate, out)
    assert result.returncode == 2
    assert f"{out}/partners/evil: is a symbolic link" in result.stderr
    assert (outside / "victim.conf").read_text() == "precious\n"
    assert (tmp_path / "victim2").read_text() == "precious\n"


def test_names_a_build_never_writes_are_never_removed(estate: Path, tmp_path: Path, outside: Path) -> None:
    out = tmp_path / "out"
    assert build(estate, out).returncode == 0
    (out / "notes.txt").write_text("mine\n")
    (out / "wireguard/old.conf").write_text("stale\n")
    (out / "wireguard/linked.conf").symlink_to(outside / "victim.conf")
    (out / "wireguard/.hidden.conf").write_text("mine\n")
    (out / ".gatewayctl-build.json").write_text(json.dumps({"files": [
        "notes.txt", "wireguard/old.conf", "wireguard/linked.conf", "wireguard/.hidden.conf"]}))
    result = build(estate, out)
    assert result.returncode == 0, result.stderr
    assert f"removed   {out}/wireguard/old.conf" in result.stdout and "linked" not in result.stdout
    assert not (out / "wireguard/old.conf").exists()
    assert (out / "notes.txt").exists() and (out / "wireguard/.hidden.conf").exists()
    assert (out / "wireguard/linked.conf").is_symlink() and (outside / "victim.conf").read_text() == "precious\n"


def test_a_linked_folder_inside_the_output_is_refused(estate: Path, tmp_path: Path, outside: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "partners").symlink_to(outside)
    result = build(estate, out)
    assert result.returncode == 2
    assert f"error: {out}/partners: is a symbolic link" in result.stderr
    assert sorted(p.name for p in outside.iterdir()) == ["victim.conf"]


@pytest.mark.parametrize("where", ["out", "above"])
def test_a_linked_output_folder_or_folder_above_it_is_refused(estate: Path, tmp_path: Path, outside: Path, where: str) -> None:
    if where == "out":
        (tmp_path / "out").symlink_to(outside)
        out, shown = tmp_path / "out", f"{tmp_path}/out"
    else:
        (tmp_path / "above").symlink_to(outside)
        out, shown = tmp_path / "above/out", f"{tmp_path}/above"
    result = build(estate, out)
    assert result.returncode == 2
    assert f"error: {shown}: is a symbolic link" in result.stderr
    assert sorted(p.name for p in outside.iterdir()) == ["victim.conf"]


def test_a_link_in_place_of_an_output_file_is_replaced_not_written_through(estate: Path, tmp_path: Path,
                                                                             outside: Path) -> None:
    out = tmp_path / "out"
    assert build(estate, out).returncode == 0
    conf = out / "partners/acme/acme-hq.conf"
    expected = conf.read_bytes()
    conf.unlink()
    conf.symlink_to(outside / "victim.conf")
    assert build(estate, out).returncode == 0
    assert not conf.is_symlink() and conf.read_bytes() == expected and conf.stat().st_mode & 0o777 == 0o600
    assert (outside / "victim.conf").read_text() == "precious\n"


def test_a_relative_output_folder_is_written_from_the_working_folder(estate: Path, tmp_path: Path) -> None:
    result = program("--profiles", str(estate), "build", "-o", "rel/out", "--at", AT, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "rel/out/nftables/gatewayctl.nft").is_file()
    assert json.loads((tmp_path / "rel/out/.gatewayctl-build.json").read_text())["files"]


# --- 9: every unexpected exception exits 2 with one line ---------------------------------------------------


def test_an_unexpected_exception_is_one_line_and_status_2(monkeypatch: pytest.MonkeyPatch, estate: Path) -> None:
    import gatewayctl.cli.build_cmd as build_cmd

    def broken(*args: object) -> None:
        raise RuntimeError("something inside\nbroke")

    monkeypatch.setattr(build_cmd, "load_each_or_exit", broken)
    result = run_cli("--profiles", str(estate), "validate")
    assert result.exit_code == 2
    assert result.stderr == "error: unexpected RuntimeError: something inside broke (--debug shows where)\n"
    result = run_cli("--debug", "--profiles", str(estate), "validate")
    assert result.exit_code == 2
    assert "Traceback (most recent call last)" in result.stderr and "in broken" in result.stderr


def test_an_evaluation_date_past_what_dates_can_hold_is_status_2(estate: Path) -> None:
    for command in ("validate", "lint", "test"):
        result = program("--profiles", str(estate), command, "--at", "9999-12-31")
        assert result.returncode == 2, (command, result.stderr)
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr


# --- 10: the compiled-template cache cannot be swapped -----------------------------------------------------


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "cache-home"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    monkeypatch.delenv("GATEWAYCTL_TEMPLATE_CACHE", raising=False)
    return home


def test_the_cache_is_used_when_every_folder_is_safe(cache_home: Path) -> None:
    from gatewayctl.render.environment import template_cache

    assert template_cache() is not None
    assert (cache_home / "gatewayctl/templates").stat().st_mode & 0o777 == 0o700


def test_a_linked_cache_folder_is_not_used(cache_home: Path, tmp_path: Path) -> None:
    from gatewayctl.render.environment import template_cache

    planted = tmp_path / "planted"
    planted.mkdir(mode=0o700)  # ours and private: only the link is wrong
    (cache_home / "gatewayctl").symlink_to(planted)
    assert template_cache() is None


def test_a_folder_others_can_write_above_the_cache_is_refused(cache_home: Path) -> None:
    from gatewayctl.render.environment import template_cache

    os.chmod(cache_home.parent, 0o777)  # someone else could rename the cache base away and put theirs
    try:
        assert template_cache() is None
    finally:
        os.chmod(cache_home.parent, 0o700)
    os.chmod(cache_home, 0o770)
    assert template_cache() is None


def test_a_cache_entry_swapped_for_a_link_is_not_loaded(cache_home: Path, tmp_path: Path) -> None:
    import marshal
    import pickle

    import jinja2
    from jinja2.bccache import bc_magic

    from gatewayctl.render.environment import template_cache

    source = "real {{ value }}\n"
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl/t.j2").write_text(source)

    def render() -> str:
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(tmp_path / "tpl")), bytecode_cache=template_cache(),
                                 keep_trailing_newline=True)
        return env.get_template("t.j2").render(value=1)

    assert render() == "real 1\n"  # compiled and cached
    [entry] = (cache_home / "gatewayctl/templates").iterdir()
    evil_code = jinja2.Environment(keep_trailing_newline=True).compile("PWNED {{ value }}\n", "t.j2", str(tmp_path / "tpl/t.j2"))
    forged = bc_magic + pickle.dumps(hashlib.sha1(source.encode()).hexdigest(), 2) + marshal.dumps(evil_code)
    outside = tmp_path / "forged.cache"
    outside.write_bytes(forged)
    outside.chmod(0o600)
    entry.unlink()
    entry.symlink_to(outside)
    assert render() == "real 1\n"
    entry.unlink()
    entry.write_bytes(forged)  # the same bytes as a private regular file are loaded: the link is what is refused
    entry.chmod(0o600)
    assert render() == "PWNED 1\n"


def test_a_missing_cache_base_is_made_private(cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gatewayctl.render.environment import template_cache

    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home / "new"))
    assert template_cache() is not None
    assert (cache_home / "new").stat().st_mode & 0o777 == 0o700


# --- 6: CA files, policy test files and the secrets scan read no link and no more than a bound -------------


def bounded(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """gatewayctl as its own process with at most 1 GB of address space: a read of a huge file or a device
    fails (MemoryError) instead of taking the machine's memory; a wait on a FIFO trips the timeout."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1_000_000_000, 1_000_000_000))

    result = subprocess.run([sys.executable, "-m", "gatewayctl", *args], capture_output=True, text=True,
                            timeout=timeout, check=False, preexec_fn=limit)
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr, result.stderr[-500:]
    return result


CA = "ca/globex-issuing-ca.pem"  # the example estate's one CA file, named by partners/globex.yaml


def ca_error_prefix(estate: Path) -> str:
    globex = estate / "partners/globex.yaml"
    return f"partners/globex.yaml:{line_of(globex, 'issuing_cas')}: certificates.issuing_cas[0]: {CA}: cannot read "


def test_a_ca_file_linked_out_of_the_profiles_is_refused_and_never_printed(estate: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.pem"
    outside.write_text((estate / CA).read_text() + SECRET + "\n")  # a good CA: only the link is wrong
    (estate / CA).unlink()
    (estate / CA).symlink_to(outside)
    result = bounded("--profiles", str(estate), "validate", "--at", AT)
    assert result.returncode == 2, result.stderr
    assert f"{ca_error_prefix(estate)}{estate / CA}: is a symbolic link" in result.stderr
    assert "j9T" not in result.stderr + result.stdout


def test_a_ca_file_in_a_linked_folder_is_refused(estate: Path, tmp_path: Path) -> None:
    (estate / "ca").rename(tmp_path / "ca-elsewhere")
    (estate / "ca").symlink_to(tmp_path / "ca-elsewhere")
    result = bounded("--profiles", str(estate), "validate", "--at", AT)
    assert result.returncode == 2, result.stderr
    assert f"{ca_error_prefix(estate)}{estate / CA}: its folder 'ca' is a symbolic link" in result.stderr


def test_a_fifo_as_ca_file_is_refused_without_waiting(estate: Path) -> None:
    (estate / CA).unlink()
    os.mkfifo(estate / CA)
    result = bounded("--profiles", str(estate), "validate", "--at", AT)  # the old read waited for a writer
    assert result.returncode == 2, result.stderr
    assert f"{ca_error_prefix(estate)}{estate / CA}: is a FIFO (named pipe)" in result.stderr


def outside_tests(tmp_path: Path) -> Path:
    """A folder outside the profiles with a policy test file whose errors would quote its content."""
    folder = tmp_path / "outside-tests"
    folder.mkdir()
    (folder / "x.yaml").write_text(f"# {SECRET}\nhunter2-secret: 1\ntests:\n  - name: hunter2-secret\n")
    return folder


def test_a_linked_policy_test_file_is_refused_and_never_printed(estate: Path, tmp_path: Path) -> None:
    (estate / "tests/x.yaml").symlink_to(outside_tests(tmp_path) / "x.yaml")
    result = bounded("--profiles", str(estate), "test", "--at", AT)
    assert result.returncode == 2, result.stderr
    assert f"{estate}/tests/x.yaml: is a symbolic link" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout and "j9T" not in result.stderr + result.stdout


def test_a_linked_policy_tests_folder_is_refused_and_never_printed(estate: Path, tmp_path: Path) -> None:
    import shutil

    shutil.rmtree(estate / "tests")
    (estate / "tests").symlink_to(outside_tests(tmp_path))
    result = bounded("--profiles", str(estate), "test", "--at", AT)
    assert result.returncode == 2, result.stderr
    assert f"{estate}/tests/x.yaml: its folder 'tests' is a symbolic link" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout and "j9T" not in result.stderr + result.stdout


def test_the_secrets_scan_follows_no_link_and_reads_a_bounded_prefix(estate: Path, tmp_path: Path) -> None:
    import time

    clean = bounded("--profiles", str(estate), "lint", "--format", "json", "--at", AT)
    assert clean.returncode == 0, clean.stderr
    huge = tmp_path / "huge.txt"
    with huge.open("wb") as handle:  # sparse: 3 GB to read, no disk or memory until then
        handle.truncate(3 * 1024**3)
    key = tmp_path / "gateway.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VuBCIEIA==\n-----END PRIVATE KEY-----\n")
    (estate / "zero.txt").symlink_to("/dev/zero")
    (estate / "huge-link.txt").symlink_to(huge)
    (estate / "ca/gateway.key").symlink_to(key)  # what a link points at is not stored with the profiles
    (estate / "notes").symlink_to(tmp_path)  # nor what a linked folder holds
    os.mkfifo(estate / "fifo.txt")
    with (estate / "huge-inside.txt").open("wb") as handle:
        handle.truncate(3 * 1024**3)
    start = time.monotonic()
    result = bounded("--profiles", str(estate), "lint", "--format", "json", "--at", AT)
    assert time.monotonic() - start < 20
    assert (result.returncode, result.stdout) == (clean.returncode, clean.stdout), result.stderr[-500:]


def test_the_secrets_scan_still_finds_a_key_in_a_regular_file(estate: Path) -> None:
    (estate / "ca/leaked.pem").write_text("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n")
    result = bounded("--profiles", str(estate), "lint", "--at", AT)
    assert result.returncode == 1, result.stderr
    assert f"{estate}/ca/leaked.pem:1: GW801 EC private key in leaked.pem" in result.stdout


# --- 9: the --at instant is held to the range profile dates are held to ------------------------------------


@pytest.mark.parametrize("value", ["2101-01-01", "9999-12-31", "1969-12-31T23:59:59", "2100-12-31T23:00-05:00",
                                   "9999-12-31T23:00-05:00", "0001-01-01T00:00+01:00"])
@pytest.mark.parametrize("command", ["validate", "lint", "test"])
def test_an_at_outside_the_date_range_is_a_usage_error(estate: Path, command: str, value: str) -> None:
    result = run_cli("--profiles", str(estate), command, "--at", value)
    assert result.exit_code == 2, result.stderr
    assert result.stderr == f"error: --at {value!r}: must be an instant from 1970-01-01 to 2100-12-31 (UTC), " \
                            "the range every profile date is held to\n"


@pytest.mark.parametrize("value", ["1970-01-01", "2100-12-31T23:59:59", "2101-01-01T00:30+02:00"])
def test_an_at_at_the_ends_of_the_range_is_accepted(estate: Path, value: str) -> None:
    result = run_cli("--profiles", str(estate), "validate", "--at", value)
    assert result.exit_code == 0, result.stderr


def test_a_planted_manifest_cannot_remove_files_a_build_never_writes(tmp_path: Path) -> None:
    """Only names of the kind each output folder holds are removed as stale (found by the adversarial review)."""
    from tests.conftest import PROFILES

    out = tmp_path / "out"
    (out / "nftables").mkdir(parents=True)
    (out / "partners" / "x").mkdir(parents=True)
    keep = [out / "nftables" / "notes.txt", out / "partners" / "x" / "contract.pdf"]
    for path in keep:
        path.write_text("not gatewayctl's\n")
    stale = out / "partners" / "x" / "old-peer.conf"
    stale.write_text("[Interface]\n")
    (out / ".gatewayctl-build.json").write_text(json.dumps(
        {"format": "gatewayctl-build/1", "files": ["nftables/notes.txt", "partners/x/contract.pdf", "partners/x/old-peer.conf"]}))
    result = run_cli("--profiles", str(PROFILES), "build", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert all(path.read_text() == "not gatewayctl's\n" for path in keep)
    assert not stale.exists()  # a config an earlier build wrote is still cleaned up
