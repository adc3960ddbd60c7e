"""`cert verify` and `cert requirements` with a test PKI generated at run time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.conftest import AT, AT_DT, run_cli
from tests.pki import Pki, pem


@pytest.fixture
def pki(estate: Path) -> Pki:
    ca = Pki(AT_DT)
    (estate / "ca" / "globex-issuing-ca.pem").write_bytes(pem(ca.issuing))
    path = estate / "partners" / "globex.yaml"
    path.write_text(path.read_text().replace("  max_lifetime_days: 1095\n", "  max_lifetime_days: 1095\n"
                                             "  identity: {source: upn, allowed: [alice@globex.example, bob@globex.example]}\n"))
    return ca


def check(estate: Path, tmp_path: Path, cert: object, *extra: str) -> tuple[int, str]:
    path = tmp_path / "user.pem"
    path.write_bytes(pem(cert))  # type: ignore[arg-type]
    result = run_cli("--profiles", str(estate), "cert", "verify", "--partner", "globex", str(path), "--at", AT, *extra)
    return result.exit_code, result.stdout + result.stderr


def test_good_certificate_is_accepted(estate: Path, pki: Pki, tmp_path: Path) -> None:
    code, out = check(estate, tmp_path, pki.user())
    assert code == 0, out
    assert "accepted: CN=alice" in out and "identity alice@globex.example" in out


CASES = [
    ("expired", {"days": (-400, -5)}, "validity: expired"),
    ("not yet valid", {"days": (3, 300)}, "validity: not yet valid"),
    ("missing policy OID", {"policies": ()}, "certificate policy 2.16.840.1.101.3.2.1.3.13: policies none"),
    ("missing EKU", {"ekus": ("1.3.6.1.5.5.7.3.2",)}, "extended key usage 1.3.6.1.4.1.311.20.2.2: EKUs 1.3.6.1.5.5.7.3.2"),
    ("RSA-1024", {"rsa_bits": 1024}, "key strength: RSA >= 2048: RSA 1024"),
    ("unmapped identity", {"upn": "mallory@globex.example"},
     "identity (upn) among the partner's allowed users: mallory@globex.example"),
    ("too long", {"days": (-10, 2000)}, "lifetime: at most 1095 days: 2010 days"),
]


@pytest.mark.parametrize(("what", "options", "expected"), CASES, ids=[c[0] for c in CASES])
def test_rejected_certificates_name_the_requirement(estate: Path, pki: Pki, tmp_path: Path, what: str,
                                                    options: dict, expected: str) -> None:  # type: ignore[type-arg]
    code, out = check(estate, tmp_path, pki.user(**options))
    assert code == 1, out
    assert out.startswith("rejected: ")
    assert f"  {expected}" in out, out


def test_certificate_from_another_ca(estate: Path, pki: Pki, tmp_path: Path) -> None:
    other = Pki(AT_DT, name="Initrode")
    code, out = check(estate, tmp_path, pki.user(signer=(other.issuing_key, other.issuing)))
    assert code == 1 and "  path to one of the partner's issuing CAs: " in out


def test_revoked_in_the_crl(estate: Path, pki: Pki, tmp_path: Path) -> None:
    revoked, fine = pki.user(), pki.user(upn="bob@globex.example")
    crl = tmp_path / "globex.crl"
    crl.write_bytes(pki.crl([revoked]).public_bytes(serialization.Encoding.DER))
    code, out = check(estate, tmp_path, revoked, "--crl", str(crl))
    assert code == 1 and f"  revocation: not revoked: serial {revoked.serial_number:x} revoked on" in out
    code, out = check(estate, tmp_path, fine, "--crl", str(crl))
    assert code == 0, out


def test_revocation_required_without_a_crl(estate: Path, pki: Pki, tmp_path: Path) -> None:
    path = estate / "partners" / "globex.yaml"
    path.write_text(path.read_text().replace("  smartcard_required: true\n", "  smartcard_required: true\n  revocation: required\n"))
    code, out = check(estate, tmp_path, pki.user())
    assert code == 1 and "  revocation: a CRL of the issuing CA: none given" in out


def test_a_stale_crl_is_refused(estate: Path, pki: Pki, tmp_path: Path) -> None:
    crl = tmp_path / "old.crl"
    crl.write_bytes(pki.crl([]).public_bytes(serialization.Encoding.PEM))
    path = tmp_path / "user.pem"
    path.write_bytes(pem(pki.user()))
    later = (AT_DT + dt.timedelta(days=30)).strftime("%Y-%m-%d")
    result = run_cli("--profiles", str(estate), "cert", "verify", "--partner", "globex", str(path), "--crl", str(crl),
                     "--at", later)
    assert result.exit_code == 1 and "revocation: a current CRL: next update was due" in result.stdout


def test_presets_fill_requirements(estate: Path) -> None:
    path = estate / "partners" / "globex.yaml"
    text = path.read_text()
    start = text.index("certificates:")
    path.write_text(text[:start] + "certificates:\n  preset: company-smartcard\n  issuing_cas: [ca/globex-issuing-ca.pem]\n")
    result = run_cli("--profiles", str(estate), "cert", "requirements", "--partner", "globex")
    assert result.exit_code == 0
    assert "profile: A company smart card" in result.stdout
    assert "with extended key usages: clientAuth, smartcardLogon" in result.stdout
    assert "naming its holder in upn" in result.stdout


def test_bad_input_is_exit_2(estate: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    result = run_cli("--profiles", str(estate), "cert", "verify", "--partner", "globex", str(junk))
    assert result.exit_code == 2
    assert run_cli("--profiles", str(estate), "cert", "verify", "--partner", "acme", str(junk)).exit_code == 2
