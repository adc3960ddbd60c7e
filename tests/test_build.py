"""`gatewayctl build`: determinism, minimal writes, modes, stale files, template overrides, --at."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.conftest import AT, PROFILES, run_cli


def build(out: Path, *extra: str, profiles: Path = PROFILES) -> str:
    result = run_cli("--profiles", str(profiles), "build", "-o", str(out), "--at", AT, *extra)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mode & 0o777, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


def test_rebuild_is_byte_identical_and_writes_nothing(tmp_path: Path) -> None:
    first = build(tmp_path / "out")
    before = snapshot(tmp_path / "out")
    second = build(tmp_path / "out")
    assert snapshot(tmp_path / "out") == before  # same bytes, same modes, not even touched
    assert first.count("written") == 14  # 9 configs and certificates, the report service and timer, 3 boot units
    assert second.count("unchanged") == 14 and "written" not in second


def test_build_in_two_folders_is_identical(tmp_path: Path) -> None:
    build(tmp_path / "a")
    build(tmp_path / "b")
    a = {k: v[0] for k, v in snapshot(tmp_path / "a").items()}
    assert a == {k: v[0] for k, v in snapshot(tmp_path / "b").items()}


def test_configs_are_0600_and_the_rest_0644(tmp_path: Path) -> None:
    build(tmp_path / "out")
    modes = {rel: mode for rel, (_, mode, _) in snapshot(tmp_path / "out").items()}
    assert modes["wireguard/wg-partners.conf"] == 0o600
    assert modes["partners/acme/acme-hq.conf"] == 0o600
    assert modes["nftables/gatewayctl.nft"] == 0o644
    assert modes["partners/globex/certificate-requirements.json"] == 0o644


def test_only_the_changed_file_is_rewritten(tmp_path: Path, estate: Path) -> None:
    out = tmp_path / "out"
    build(out, profiles=estate)
    acme = estate / "partners" / "acme.yaml"
    acme.write_text(acme.read_text().replace("keepalive: 25", "keepalive: 15"))
    output = build(out, profiles=estate)
    written = sorted(line.split()[1] for line in output.splitlines() if line.startswith("written"))
    assert written == [str(out / "partners/acme/acme-hq.conf"), str(out / "wireguard/wg-partners.conf")]


def test_mode_is_repaired_even_when_content_is_unchanged(tmp_path: Path) -> None:
    out = tmp_path / "out"
    build(out)
    os.chmod(out / "wireguard/wg-partners.conf", 0o644)
    build(out)
    assert stat.S_IMODE((out / "wireguard/wg-partners.conf").stat().st_mode) == 0o600


def test_files_of_a_removed_partner_are_removed(tmp_path: Path, estate: Path) -> None:
    out = tmp_path / "out"
    build(out, profiles=estate)
    (out / "notes.txt").write_text("mine")
    (estate / "partners" / "initech.yaml").unlink()
    output = build(out, profiles=estate)
    assert f"removed   {out / 'partners/initech/initech-laptop.conf'}" in output
    assert not (out / "partners/initech/initech-laptop.conf").exists()
    assert (out / "notes.txt").read_text() == "mine"  # files gatewayctl did not write are left alone


def test_site_templates_override_by_name(tmp_path: Path) -> None:
    site = tmp_path / "site" / "wireguard"
    site.mkdir(parents=True)
    (site / "partner.conf.j2").write_text("# site template for {{ peer.name }}\n")
    build(tmp_path / "out", "--templates", str(tmp_path / "site"))
    assert (tmp_path / "out/partners/acme/acme-hq.conf").read_text() == "# site template for acme-hq\n"
    assert "[Peer]" in (tmp_path / "out/wireguard/wg-partners.conf").read_text()


def test_a_template_with_an_undefined_name_fails_instead_of_printing_nothing(tmp_path: Path) -> None:
    site = tmp_path / "site" / "wireguard"
    site.mkdir(parents=True)
    (site / "partner.conf.j2").write_text("{{ peer.nmae }}\n")
    result = run_cli("--profiles", str(PROFILES), "build", "-o", str(tmp_path / "out"), "--templates",
                     str(tmp_path / "site"), "--at", AT)
    assert result.exit_code == 2
    assert "error: template" in result.stderr and "has no attribute 'nmae'" in result.stderr
    assert not (tmp_path / "out").exists()


def test_at_a_later_date_leaves_out_expired_grants_with_warning(tmp_path: Path) -> None:
    result = run_cli("--profiles", str(PROFILES), "build", "-o", str(tmp_path / "out"), "--at", "2027-04-01")
    assert result.exit_code == 0
    assert "grant of 'intranet-web' to partner 'acme' left out: it expired on 2027-03-31" in result.stderr
    assert "partner 'initech' has no grant in force" in result.stderr  # its agreement ended 2027-02-28
    ruleset = (tmp_path / "out/nftables/gatewayctl.nft").read_text()
    assert "acme/intranet-web" not in ruleset and "initech/" not in ruleset
    assert "10.250.3.1 : goto deny_initech" in ruleset  # its tunnel stays, its packets are dropped and logged


def test_element_timeouts_end_with_the_grant(tmp_path: Path) -> None:
    result = run_cli("--profiles", str(PROFILES), "build", "-o", str(tmp_path / "out"), "--at", "2027-03-31T20:00:00")
    assert result.exit_code == 0
    ruleset = (tmp_path / "out/nftables/gatewayctl.nft").read_text()
    # acme's intranet-web grant's last day is 2027-03-31: 4 hours left, never rounded up
    assert '10.250.1.1 . 10.1.0.10 . tcp . 443 timeout 4h comment "acme/intranet-web"' in ruleset


def test_bad_at_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("--profiles", str(PROFILES), "build", "-o", str(tmp_path / "out"), "--at", "tomorrow")
    assert result.exit_code == 2
    assert "--at 'tomorrow' is not a date" in result.stderr


def test_validate_reports_counts_and_exit_zero() -> None:
    result = run_cli("--profiles", str(PROFILES), "validate", "--at", AT)
    assert result.exit_code == 0
    assert "ok: 4 partners, 5 peers, 11 grants in force, 9 services" in result.stdout


def test_missing_profiles_folder(tmp_path: Path) -> None:
    result = run_cli("--profiles", str(tmp_path / "nope"), "validate")
    assert result.exit_code == 2
    assert "profiles folder not found" in result.stderr


def test_timeouts_are_spelled_so_that_nft_accepts_them() -> None:
    from gatewayctl.render.environment import nft_timeout

    assert nft_timeout(113375316) == "1312d5h8m36s"  # nft rejects "113375316s" as too large
    assert nft_timeout(86400 * 30) == "30d"
    assert nft_timeout(3600 * 4) == "4h"
    assert nft_timeout(59) == "59s"


def test_compiled_templates_are_cached_privately_and_change_with_the_template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("GATEWAYCTL_TEMPLATE_CACHE", raising=False)
    folder = tmp_path / "cache" / "gatewayctl" / "templates"
    first = build(tmp_path / "a")
    entries = sorted(folder.iterdir())
    assert entries and folder.stat().st_mode & 0o777 == 0o700
    assert all(e.stat().st_mode & 0o777 == 0o600 for e in entries)
    build(tmp_path / "b")  # from the cache: the same files
    assert sorted(folder.iterdir()) == entries
    assert {k: v[0] for k, v in snapshot(tmp_path / "a").items()} == {k: v[0] for k, v in snapshot(tmp_path / "b").items()}
    site = tmp_path / "site" / "wireguard"
    site.mkdir(parents=True)
    source = (Path(__file__).resolve().parent.parent / "templates" / "wireguard" / "partner.conf.j2").read_text()
    (site / "partner.conf.j2").write_text("# site template\n" + source)
    build(tmp_path / "c", "--templates", str(tmp_path / "site"))  # a changed source is compiled again, not served stale
    assert len(list(folder.iterdir())) == len(entries) + 1
    assert all(conf.read_text().startswith("# site template") for conf in (tmp_path / "c" / "partners").rglob("*.conf"))
    assert first.count("written") == 14


def test_a_template_cache_others_can_write_to_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gatewayctl.render.environment import template_cache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("GATEWAYCTL_TEMPLATE_CACHE", raising=False)
    assert template_cache() is not None
    (tmp_path / "cache" / "gatewayctl" / "templates").chmod(0o777)
    assert template_cache() is None  # its files would be loaded as code
    (tmp_path / "cache" / "gatewayctl" / "templates").chmod(0o700)
    monkeypatch.setenv("GATEWAYCTL_TEMPLATE_CACHE", "off")
    assert template_cache() is None
