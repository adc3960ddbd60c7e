"""`cert verify` and `cert requirements`."""

from __future__ import annotations

from pathlib import Path

import click
from cryptography import x509

from gatewayctl.certs.requirements import describe, effective
from gatewayctl.certs.verify import verify
from gatewayctl.cli.common import Context, at_option, load_or_exit, resolve_at
from gatewayctl.loader.profiles import Loaded
from gatewayctl.model import PartnerFile
from gatewayctl.pipeline import Compiled


@click.group()
def cert() -> None:
    """Partner certificate (smart-card) requirements.

    \b
    Examples:
      gatewayctl cert requirements --partner globex
      gatewayctl cert verify --partner globex alice.pem --chain globex-issuing.pem --crl globex.crl
    """


def _partner(compiled: Compiled, partner_id: str) -> Loaded[PartnerFile]:
    partner = next((p for p in compiled.estate.partners if p.model.id == partner_id), None)
    if partner is None:
        raise click.BadParameter(f"no partner {partner_id!r} in the profiles", param_hint="--partner")
    if partner.model.certificates is None:
        raise click.BadParameter(f"partner {partner_id!r} has no certificate requirements", param_hint="--partner")
    return partner


def _pem(path: Path, what: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"{path}: not a PEM file of certificates ({exc})", param_hint=what) from None


@cert.command()
@click.option("--partner", required=True, help="The partner whose requirements apply.")
@click.pass_obj
def requirements(obj: Context, partner: str) -> None:
    """Say in words what a partner's users must present.

    \b
    Examples:
      gatewayctl cert requirements --partner globex
    """
    import datetime as dt

    compiled = load_or_exit(obj.profiles, dt.datetime.now(dt.UTC), -1)
    loaded = _partner(compiled, partner)
    reqs = loaded.model.certificates
    assert reqs is not None
    click.echo("\n".join(describe(effective(reqs), partner, reqs.issuing_cas)))


@cert.command("verify")
@click.option("--partner", required=True, help="The partner whose requirements apply.")
@click.argument("certificate", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--chain", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Intermediate certificates (PEM) between the user certificate and the issuing CA.")
@click.option("--crl", type=click.Path(path_type=Path, dir_okay=False, exists=True), help="The issuing CA's CRL (PEM or DER).")
@at_option
@click.pass_obj
def verify_cmd(obj: Context, partner: str, certificate: Path, chain: Path | None, crl: Path | None,
               at_text: str | None) -> None:
    """Check a user certificate against a partner's requirements, one line per unmet requirement.

    Exit 0: accepted; 1: rejected; 2: bad input.

    \b
    Examples:
      gatewayctl cert verify --partner globex alice.pem
      gatewayctl cert verify --partner globex alice.pem --chain issuing.pem --crl globex.crl --at 2027-01-01
    """
    at = resolve_at(at_text)
    compiled = load_or_exit(obj.profiles, at, -1)
    loaded = _partner(compiled, partner)
    reqs = loaded.model.certificates
    assert reqs is not None
    cas = [c for rel in reqs.issuing_cas for c in _pem(obj.profiles / rel, "issuing CA")]
    leaf = _pem(certificate, "CERTIFICATE")[0]
    intermediates = _pem(chain, "--chain") if chain else []
    revocation = None
    if crl:
        data = crl.read_bytes()
        try:
            revocation = x509.load_pem_x509_crl(data) if b"-----BEGIN" in data else x509.load_der_x509_crl(data)
        except ValueError as exc:
            raise click.BadParameter(f"{crl}: not a CRL ({exc})", param_hint="--crl") from None
    result = verify(leaf, intermediates, cas, effective(reqs), at, revocation)
    subject = leaf.subject.rfc4514_string()
    if result.accepted:
        click.echo(f"accepted: {subject} (serial {result.serial}, identity {result.identity or '-'}) for partner {partner}")
        return
    click.echo(f"rejected: {subject} (serial {result.serial}) for partner {partner}")
    for unmet in result.unmet:
        click.echo(f"  {unmet}")
    raise SystemExit(1)
