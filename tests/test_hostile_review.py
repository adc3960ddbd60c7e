"""A hostile pull request against the review: every loosening shows as a risk in `gatewayctl diff`, free
text drafted by a partner renders inertly in the PR comment and the reports, and a partner with nothing
in force gets a WireGuard config that the real `wg` parser accepts."""

from __future__ import annotations

import base64
import datetime as dt
import html.parser
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options

from gatewayctl.markup import ZWSP, markdown_text
from gatewayctl.review.compare import Change
from gatewayctl.review.formats import markdown
from gatewayctl.review.review import Review
from tests.conftest import AT, AT_DT, PROFILES, run_cli
from tests.netns import Namespace, sh, unique
from tests.pki import ca_certificate

HOSTILE = "[x](https://e.vil) ![i](https://e.vil/p.png) @team <img src=x> | a | b |"
GLOBEX_CERTS = """certificates:
  smartcard_required: true
  issuing_cas: [ca/globex-issuing-ca.pem]
  policy_oids: [2.16.840.1.101.3.2.1.3.13]
  ekus: [clientAuth, smartcardLogon]
  min_rsa_bits: 3072
  ec_curves: [P-256]
  max_lifetime_days: 1095
  revocation: required
  session:
    duration: 1h
  identity:
    source: upn
    allowed: [hank@globex.example]
"""
AUTH = """
auth:
  port: 8443
  session: 8h
  server_certificate: /etc/gatewayctl/front/server.pem
  server_key: /etc/gatewayctl/front/server.key
  crl_file: /etc/gatewayctl/front/crls.pem
lint:
  approvers: [Maria Lopez (CISO delegate), "Dr. Ines Wolf (CFO office)", Tom Becker (service owner)]
limits:
  max_partner_network_prefix: {ipv4: 16, ipv6: 48}
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                          check=True, capture_output=True, text=True).stdout


class Repo:
    """The example estate with a session front, a CRL and strict certificate requirements for globex."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.profiles = root / "profiles"

    def edit(self, rel: str, old: str, new: str) -> None:
        path = self.profiles / rel
        text = path.read_text()
        assert old in text, (rel, old)
        path.write_text(text.replace(old, new, 1))

    def commit(self, message: str) -> None:
        git(self.root, "add", "-A")
        git(self.root, "commit", "-qm", message)

    def diff(self, *args: str) -> tuple[int, str]:
        result = run_cli("--profiles", str(self.profiles), "diff", "--base", "HEAD", "--at", AT, *args)
        assert result.exit_code in (0, 1), result.stderr
        return result.exit_code, result.stdout

    def changes(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        _, out = self.diff("--format", "json")
        data = json.loads(out)
        return data["changes"], data


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    root = tmp_path / "estate"
    root.mkdir()
    shutil.copytree(PROFILES, root / "profiles")
    r = Repo(root)
    (r.profiles / "gateway.yaml").write_text((r.profiles / "gateway.yaml").read_text() + AUTH)
    globex = (r.profiles / "partners/globex.yaml").read_text()
    (r.profiles / "partners/globex.yaml").write_text(globex[:globex.index("certificates:")] + GLOBEX_CERTS)
    (r.profiles / "ca/rogue-ca.pem").write_bytes(ca_certificate(AT_DT, name="Rogue Issuing CA"))
    git(root, "init", "-q")
    r.commit("base")
    assert r.diff()[0] == 0  # the base compares clean against itself
    return r


def find(changes: list[dict[str, Any]], partner: str, kind: str, subject: str) -> dict[str, Any]:
    hits = [c for c in changes if c["partner"] == partner and c["kind"] == kind and subject in c["subject"]]
    assert len(hits) == 1, (partner, kind, subject, changes)
    return hits[0]


G = "partners/globex.yaml"
GW = "gateway.yaml"
# (what, edits, [(partner, kind, subject contains, detail contains)]): each expected change must be a risk.
LOOSENINGS: list[tuple[str, list[tuple[str, str, str]], list[tuple[str, str, str, str]]]] = [
    ("session removed", [(G, "  session:\n    duration: 1h\n", "")],
     [("globex", "certificates-changed", "session", "3600 -> no session")]),
    ("longer session", [(G, "duration: 1h", "duration: 4h")], [("globex", "certificates-changed", "session", "3600 -> 14400")]),
    ("revocation off", [(G, "revocation: required", "revocation: off")],
     [("globex", "certificates-changed", "revocation", "required -> off")]),
    ("identities widened", [(G, "allowed: [hank@globex.example]", "allowed: [hank@globex.example, eve@globex.example]")],
     [("globex", "certificates-changed", "identities", "added eve@globex.example")]),
    ("identity swapped (one out, one in is not tighter)", [(G, "allowed: [hank@globex.example]", "allowed: [eve@globex.example]")],
     [("globex", "certificates-changed", "identities", "added eve@globex.example")]),
    ("identity list removed", [(G, "  identity:\n    source: upn\n    allowed: [hank@globex.example]\n", "")],
     [("globex", "certificates-changed", "identities", "hank@globex.example -> any")]),
    ("identity read from another field", [(G, "source: upn", "source: subject-cn")],
     [("globex", "certificates-changed", "identity field", "upn -> subject-cn")]),
    ("smart card not required", [(G, "smartcard_required: true", "smartcard_required: false")],
     [("globex", "certificates-changed", "smart card", "true -> false")]),
    ("policy OID dropped", [(G, "policy_oids: [2.16.840.1.101.3.2.1.3.13]", "policy_oids: []")],
     [("globex", "certificates-changed", "policy OIDs", "removed 2.16.840.1.101.3.2.1.3.13")]),
    ("EKU dropped", [(G, "ekus: [clientAuth, smartcardLogon]", "ekus: [clientAuth]")],
     [("globex", "certificates-changed", "EKUs", "removed 1.3.6.1.4.1.311.20.2.2")]),
    ("smaller keys", [(G, "min_rsa_bits: 3072", "min_rsa_bits: 2048")], [("globex", "certificates-changed", "RSA", "3072 -> 2048")]),
    ("curve added", [(G, "ec_curves: [P-256]", "ec_curves: [P-256, P-384]")],
     [("globex", "certificates-changed", "curves", "added P-384")]),
    ("lifetime unlimited", [(G, "  max_lifetime_days: 1095\n", "")],
     [("globex", "certificates-changed", "lifetime", "1095 -> no limit")]),
    ("issuing CA added", [(G, "issuing_cas: [ca/globex-issuing-ca.pem]", "issuing_cas: [ca/globex-issuing-ca.pem, ca/rogue-ca.pem]")],
     [("globex", "certificates-changed", "issuing CAs", "added CN=Rogue Issuing CA")]),
    ("certificates removed", [(G, GLOBEX_CERTS, "")], [("globex", "certificates-removed", "globex", "")]),
    ("preshared key removed", [(G, "    preshared_key_file: /etc/gatewayctl/psk/globex-dc1.psk\n", "")],
     [("globex", "preshared-key-removed", "globex-dc1", "/etc/gatewayctl/psk/globex-dc1.psk -> none")]),
    ("LAN added", [(G, "networks: [100.64.20.0/24]", "networks: [100.64.20.0/24, 100.64.21.0/24]")],
     [("globex", "peer-networks-added", "globex-dc1", "100.64.21.0/24")]),
    ("gateway session longer", [(GW, "  session: 8h", "  session: 12h")],
     [("", "gateway-changed", "auth.session", "28800 -> 43200")]),
    ("gateway CRL removed", [(GW, "  crl_file: /etc/gatewayctl/front/crls.pem\n", "")],
     [("", "gateway-changed", "auth.crl_file", "/etc/gatewayctl/front/crls.pem -> no CRL")]),
    ("gateway session front removed", [(GW, AUTH.split("lint:")[0], "\n"), (G, "  session:\n    duration: 1h\n", "")],
     [("", "gateway-changed", "auth", "session front removed"), ("globex", "certificates-changed", "session", "3600 -> no session")]),
    ("deny logging off", [(GW, "  enabled: true", "  enabled: false")],
     [("", "gateway-changed", "deny_logging.enabled", "true -> false")]),
    ("stage ceilings loosened", [(GW, "    max_services: 4", "    max_services: 6"),
                                 (GW, "    classifications: [public, internal]\n",
                                  "    classifications: [public, internal, confidential]\n"),
                                 (GW, "    preshared_key_for: [confidential]\n", ""),
                                 (GW, "    smartcard_for: [restricted]\n", "")],
     [("", "gateway-changed", "stages.established.max_services", "4 -> 6"),
      ("", "gateway-changed", "stages.pilot.classifications", "added confidential"),
      ("", "gateway-changed", "stages.established.preshared_key_for", "removed confidential"),
      ("", "gateway-changed", "stages.strategic.smartcard_for", "removed restricted")]),
    ("partners may claim wider networks", [(GW, "{ipv4: 16, ipv6: 48}", "{ipv4: 12, ipv6: 48}")],
     [("", "gateway-changed", "limits.max_partner_network_prefix.ipv4", "16 -> 12")]),
    ("approver added", [(GW, "Tom Becker (service owner)]", "Tom Becker (service owner), Eve Mallory]")],
     [("", "gateway-changed", "lint.approvers", "added Eve Mallory")]),
]


@pytest.mark.parametrize(("what", "edits", "expected"), LOOSENINGS, ids=[c[0] for c in LOOSENINGS])
def test_each_loosening_is_a_risk(repo: Repo, what: str, edits: list[tuple[str, str, str]],
                                  expected: list[tuple[str, str, str, str]]) -> None:
    for rel, old, new in edits:
        repo.edit(rel, old, new)
    changes, data = repo.changes()
    for partner, kind, subject, detail in expected:
        change = find(changes, partner, kind, subject)
        assert change["risk"], change
        assert detail in change["detail"], change
        assert "tightened" not in change["detail"], change
    assert data["summary"]["risky"] >= len(expected)
    _, text = repo.diff("--format", "text")
    assert "need a security reviewer" in text and "[RISK" in text


def test_swapping_a_ca_for_one_with_the_same_name_is_a_risk(repo: Repo) -> None:
    pem = (repo.profiles / "ca/globex-issuing-ca.pem").read_text()
    from cryptography import x509

    subject = x509.load_pem_x509_certificate(pem.encode()).subject.rfc4514_string()
    cn = subject.split("CN=", 1)[1].split(",", 1)[0]
    (repo.profiles / "ca/globex-issuing-ca.pem").write_bytes(ca_certificate(AT_DT, name=cn))  # same name, new key
    change = find(repo.changes()[0], "globex", "certificates-changed", "issuing CAs")
    assert change["risk"] and f"added CN={cn}" in change["detail"] and f"removed CN={cn}" in change["detail"]


TIGHTER_OR_CHANGED: list[tuple[str, list[tuple[str, str, str]], tuple[str, str, str], str]] = [
    ("shorter session", [(G, "duration: 1h", "duration: 30m")], ("globex", "certificates-changed", "session"), "3600 -> 1800 (tightened)"),
    ("bigger keys", [(G, "min_rsa_bits: 3072", "min_rsa_bits: 4096")], ("globex", "certificates-changed", "RSA"),
     "3072 -> 4096 (tightened)"),
    ("preshared key added", [("partners/initech.yaml", "    addresses: [10.250.3.1/32]\n",
                              "    addresses: [10.250.3.1/32]\n    preshared_key_file: /etc/gatewayctl/psk/initech-laptop.psk\n")],
     ("initech", "preshared-key-changed", "initech-laptop"), "none -> /etc/gatewayctl/psk/initech-laptop.psk (tightened)"),
    ("peer endpoint moved", [(G, "endpoint: 203.0.113.20:51820", "endpoint: 203.0.113.21:51820")],
     ("globex", "peer-endpoint-changed", "globex-dc1"), "203.0.113.20:51820 -> 203.0.113.21:51820 (changed)"),
    ("front port moved", [(GW, "  port: 8443", "  port: 9443")], ("", "gateway-changed", "auth.port"), "8443 -> 9443 (changed)"),
]


@pytest.mark.parametrize(("what", "edits", "where", "detail"), TIGHTER_OR_CHANGED, ids=[c[0] for c in TIGHTER_OR_CHANGED])
def test_tightened_only_when_strictly_tighter(repo: Repo, what: str, edits: list[tuple[str, str, str]],
                                              where: tuple[str, str, str], detail: str) -> None:
    for rel, old, new in edits:
        repo.edit(rel, old, new)
    change = find(repo.changes()[0], *where)
    assert change["detail"] == detail and not change["risk"], change


def test_added_partner_lists_every_peer_address_and_lan(repo: Repo) -> None:
    hooli = (repo.profiles / "partners/initech.yaml").read_text().replace("id: initech", "id: hooli")
    start = hooli.index("peers:")
    end = hooli.index("grants:")
    peers = ("peers:\n"
             "  - name: hooli-hq\n    public_key: mA9ltJmdlOqkqMl2bUt1zlYYkbHsCTEcMZ6uLzCq1m8=\n"
             "    addresses: [10.250.9.1/32]\n    networks: [100.64.90.0/24, 100.64.91.0/25]\n"
             f"  - name: hooli-lab\n    public_key: {base64.b64encode(bytes([7]) * 32).decode()}\n"
             "    addresses: [10.250.9.2/32]\n")
    (repo.profiles / "partners/hooli.yaml").write_text(hooli[:start] + peers + hooli[end:])
    changes, _ = repo.changes()
    hq = find(changes, "hooli", "peer-added", "hooli-hq")["detail"]
    lab = find(changes, "hooli", "peer-added", "hooli-lab")["detail"]
    assert "10.250.9.1/32" in hq and "100.64.90.0/24" in hq and "100.64.91.0/25" in hq
    assert "10.250.9.2/32" in lab and "LANs none" in lab
    assert "2 peer(s)" in find(changes, "hooli", "partner-added", "hooli")["detail"]


# ---- free text drafted by a partner, rendered -----------------------------------------------------

class Html(html.parser.HTMLParser):
    """Tags, attributes, table rows (cells per row) and visible text of a rendered page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.tables: list[list[int]] = []  # cells per row, per table
        self.text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append(0)
        elif tag in ("td", "th") and self.tables and self.tables[-1]:
            self.tables[-1][-1] += 1
        elif tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)


def parsed(document: str) -> Html:
    parser = Html()
    parser.feed(document)
    return parser


def github(md: str) -> Html:
    """The Markdown as GitHub renders it (cmark-gfm with its extensions; raw HTML let through so that
    any that got in would show)."""
    return parsed(cmarkgfm.github_flavored_markdown_to_html(md, options=Options.CMARK_OPT_UNSAFE))


def assert_inert(page: Html, header_cells: int | None = None) -> str:
    """No link, image or foreign tag; every row of a table as wide as its header (`header_cells`, when
    given); the hostile text shown as written, with its mention and URLs broken. Returns the visible text."""
    names = {tag for tag, _ in page.tags}
    assert not names & {"a", "img", "script", "iframe", "svg", "object"}, names
    assert page.tables
    for rows in page.tables:
        assert rows and set(rows) == {header_cells or rows[0]}, rows
    text = "".join(page.text)
    assert HOSTILE in text.replace(ZWSP, "")  # shown, as written
    assert "@team" not in text and "https://" not in text  # but nothing a renderer could turn live
    return text


def hostile_edits(profiles: Path) -> None:
    path = profiles / "partners/acme.yaml"
    text = path.read_text()
    for old, new in (("name: ACME Logistics GmbH", f'name: "{HOSTILE}"'), ("reference: AGR-2026-014", f'reference: "{HOSTILE}"'),
                     ("  - service: lab-ping", f'  - service: dns\n    justification: "{HOSTILE}"\n    approved_by: "{HOSTILE}"\n'
                                               "    expires: 2027-06-30\n  - service: lab-ping")):
        assert old in text, old
        text = text.replace(old, new, 1)
    path.write_text(text)


def test_hostile_text_is_inert_in_the_diff_comment(repo: Repo) -> None:
    hostile_edits(repo.profiles)
    result = run_cli("--profiles", str(repo.profiles), "validate")
    assert result.exit_code == 0, result.stderr  # validation accepts these values: escaping must cope
    _, md = repo.diff("--format", "markdown")
    changes, _ = repo.changes()
    kinds = {c["kind"] for c in changes if c["partner"] == "acme"}
    assert {"partner-renamed", "agreement-changed", "flow-added"} <= kinds
    text = assert_inert(github(md), header_cells=4)
    # the new name, the agreement reference, and the approver and justification of each new flow
    assert text.count(HOSTILE) == 0 and text.replace(ZWSP, "").count(HOSTILE) >= 4


def test_hostile_text_is_inert_in_the_markdown_and_html_reports(repo: Repo) -> None:
    hostile_edits(repo.profiles)
    state = repo.root / "state"
    md = run_cli("--profiles", str(repo.profiles), "report", "--offline", "--state-dir", str(state), "--format", "markdown")
    assert md.exit_code in (0, 1), md.stderr
    assert_inert(github(md.stdout))
    page_html = run_cli("--profiles", str(repo.profiles), "report", "--offline", "--state-dir", str(state), "--format", "html")
    assert page_html.exit_code in (0, 1), page_html.stderr
    doc = parsed(page_html.stdout)
    assert_inert_html(doc)


def assert_inert_html(doc: Html) -> None:
    for tag, attrs in doc.tags:
        assert tag != "img", attrs
        assert tag != "a" or (attrs.get("href") or "").startswith("#"), attrs
        assert "src" not in attrs, (tag, attrs)
    assert HOSTILE in "".join(doc.text)  # escaped, so shown as text


def test_a_site_html_template_without_autoescape_is_escaped_anyway(repo: Repo, tmp_path: Path) -> None:
    hostile_edits(repo.profiles)
    site = tmp_path / "site" / "report"
    site.mkdir(parents=True)
    (site / "report.html.j2").write_text("<html><body>{% for p in doc.partners %}<p>{{ p.name }}</p>{% endfor %}</body></html>\n")
    result = run_cli("--profiles", str(repo.profiles), "report", "--offline", "--state-dir", str(tmp_path / "state"),
                     "--format", "html", "--templates", str(tmp_path / "site"))
    assert result.exit_code in (0, 1), result.stderr
    assert "<img" not in result.stdout and "&lt;img src=x&gt;" in result.stdout


def test_newlines_and_line_separators_cannot_break_a_table() -> None:
    # free text refuses control characters at validation; the formats must hold without relying on it
    nasty = f"{HOSTILE}\nsecond line | c |\u2028third\u0085fourth\r\n| x |"
    review = Review("main", "HEAD", (Change("acme", "flow-added", nasty, nasty, nasty),), ())
    page = github(markdown(review))
    assert_inert(page, header_cells=4)
    assert page.tables == [[4, 4]]  # the header and one change
    for char in "\n\u2028\u0085\r":
        assert char not in markdown_text(nasty)


def test_escaping_keeps_plain_text_and_addresses_as_written() -> None:
    for plain in ("Dr. Ines Wolf (CFO office)", "2027-06-30", "fd00:1::10/128", "10.1.0.0/16 tcp/443", "8.4.3"):
        rendered = "".join(github(f"| a |\n|---|\n| {markdown_text(plain)} |\n").text).strip()
        assert rendered.strip("a\n") == plain, rendered


# ---- a partner with nothing in force ---------------------------------------------------------------

def test_partner_with_nothing_in_force_gets_a_config_wg_accepts(tmp_path: Path, needs_root: None) -> None:
    profiles = tmp_path / "profiles"
    shutil.copytree(PROFILES, profiles)
    gateway = profiles / "gateway.yaml"
    gateway.write_text(gateway.read_text().replace("endpoint: gw-fra-1.example.net:51820", "endpoint: 203.0.113.10:51820"))
    # initech's agreement ends on 2027-02-28 (its profile): two weeks later nothing of it is in force
    after = (dt.date(2027, 2, 28) + dt.timedelta(days=15)).isoformat()
    out = tmp_path / "out"
    result = run_cli("--profiles", str(profiles), "build", "-o", str(out), "--at", after)
    assert result.exit_code == 0, result.stderr
    conf = (out / "partners/initech/initech-laptop.conf").read_text()
    assert "nothing is in force" in conf.lower()
    assert not [line for line in conf.splitlines() if line.startswith("AllowedIPs")]
    private = sh("wg", "genkey").stdout.strip()
    filled = tmp_path / "initech.conf"
    filled.write_text(conf.replace("<REPLACE WITH THE PRIVATE KEY OF THIS PEER>", private))
    stripped = tmp_path / "stripped.conf"
    stripped.write_text(sh("wg-quick", "strip", str(filled)).stdout)
    broken = tmp_path / "broken.conf"  # what was generated before: the same file with an empty AllowedIPs
    broken.write_text(stripped.read_text().replace("[Peer]\n", "[Peer]\nAllowedIPs = \n"))
    with Namespace.create("gwq") as ns:
        ifname = unique("gwq")
        ns.start_wireguard_go(ifname)
        refused = ns.run("wg", "setconf", ifname, str(broken), check=False)
        assert refused.returncode != 0, "wg accepted an empty AllowedIPs: this test would not see the bug"
        accepted = ns.run("wg", "setconf", ifname, str(stripped), check=False)
        assert accepted.returncode == 0, accepted.stderr
        gateway_key = "ZVPBzda+ILGkL+7zE8mMDqcWH3mCGuXsLMJ4P35OdXA="  # gateway.yaml's public key
        allowed = ns.run("wg", "show", ifname, "allowed-ips").stdout.split()
        assert allowed == [gateway_key, "(none)"], allowed
        assert ns.run("wg", "show", ifname, "endpoints").stdout.split() == [gateway_key, "203.0.113.10:51820"]


def test_naming_the_first_approvers_is_a_risk_not_a_tightening(repo: Repo) -> None:
    """An empty lint.approvers lets no one approve an exception: filling it opens that door (found by the
    adversarial review, which saw it labelled "tightened")."""
    approvers = '  approvers: [Maria Lopez (CISO delegate), "Dr. Ines Wolf (CFO office)", Tom Becker (service owner)]'
    repo.edit(GW, approvers, "  approvers: []")
    repo.commit("no approvers")
    repo.edit(GW, "  approvers: []", "  approvers: [Eve Mallory]")
    changes, _ = repo.changes()
    change = find(changes, "", "gateway-changed", "lint.approvers")
    assert change["risk"] and "tightened" not in change["detail"], change


def test_moving_the_key_folder_or_replacing_a_peer_key_is_a_risk(repo: Repo) -> None:
    repo.edit(GW, "limits:\n", "host:\n  preshared_key_dir: /etc/gatewayctl/psk\nlimits:\n")
    repo.commit("key folder written out")
    repo.edit(GW, "preshared_key_dir: /etc/gatewayctl/psk", "preshared_key_dir: /etc/gatewayctl")
    changes, _ = repo.changes()
    assert find(changes, "", "gateway-changed", "host.preshared_key_dir")["risk"]
