"""The published JSON Schemas work in the tools people use: check-jsonschema, run as a real process with
its defaults (ECMA-262 regexes in Unicode mode, format checks on), accepts the example estate and names
what is wrong in a bad file; the address patterns mean what Python's ipaddress means.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import regress
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewayctl.schema import KINDS, schema_file_name, schema_text
from tests.conftest import PROFILES, REPO, run_cli

PUBLISHED = REPO / "docs" / "schemas"
ESTATE = {  # every file of the example estate, by the kind of schema that describes it
    "gateway": [PROFILES / "gateway.yaml"],
    "services": [PROFILES / "services.yaml"],
    "partner": sorted((PROFILES / "partners").glob("*.yaml")),
    "policy-test": sorted((PROFILES / "tests").glob("*.yaml")),
}


def check_jsonschema(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema as a user runs it (its own process, default options)."""
    return subprocess.run([sys.executable, "-m", "check_jsonschema", *map(str, args)], capture_output=True, text=True,
                          timeout=120, check=False)


def published(kind: str) -> Path:
    return PUBLISHED / schema_file_name(kind)


def test_published_schemas_are_current(tmp_path: Path) -> None:
    result = run_cli("schema", "--output-dir", str(tmp_path / "out"))
    assert result.exit_code == 0, result.stderr
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(p.name for p in PUBLISHED.glob("*.schema.json"))
    for kind in ["all", *KINDS]:
        assert published(kind).read_text() == schema_text(kind), f"regenerate: gatewayctl schema --output-dir {PUBLISHED}"
        assert (tmp_path / "out" / schema_file_name(kind)).read_text() == schema_text(kind)
        assert run_cli("schema", "--kind", kind).stdout == schema_text(kind)


def test_output_dir_writes_every_schema_and_refuses_a_kind(tmp_path: Path) -> None:
    result = run_cli("schema", "--output-dir", str(tmp_path / "s"), "--kind", "partner")
    assert result.exit_code == 2 and "--output-dir writes every JSON schema" in result.stderr, result.stderr
    assert not (tmp_path / "s").exists()


def test_every_published_schema_passes_the_metaschema_with_unicode_regexes() -> None:
    for kind in ["all", *KINDS]:
        result = check_jsonschema("--check-metaschema", published(kind))
        assert result.returncode == 0, result.stdout + result.stderr


def test_check_jsonschema_accepts_the_whole_example_estate() -> None:
    assert ESTATE["policy-test"], "the example estate has policy test files"
    for kind, files in ESTATE.items():
        result = check_jsonschema("--schemafile", published(kind), *files)
        assert result.returncode == 0, f"{kind}: {result.stdout}{result.stderr}"
        assert "ok -- validation done" in result.stdout
    every = [path for files in ESTATE.values() for path in files]
    result = check_jsonschema("--schemafile", published("all"), *every)
    assert result.returncode == 0, result.stdout + result.stderr


BAD = [  # (case, file, text in the example, replacement, schema kind, what the output must name)
    ("prefix-too-long", "services.yaml", "addresses: [10.1.0.40/32]", "addresses: [10.1.0.40/33]", "services",
     ["$.services['status-page'].addresses[0]", "'10.1.0.40/33'"]),
    ("octet-too-big", "services.yaml", "addresses: [10.1.0.53/32]", "addresses: [10.1.0.353/32]", "services",
     ["$.services.dns.addresses[0]", "'10.1.0.353/32'"]),
    ("ipv6-prefix-too-long", "partners/umbrella.yaml", '"fd00:250::4:1/128"', '"fd00:250::4:1/129"', "partner",
     ["$.peers[0].addresses[1]", "'fd00:250::4:1/129'"]),
    ("ipv6-two-gaps", "partners/umbrella.yaml", '"fd00:250::4:1/128"', '"fd00::250::4:1/128"', "partner",
     ["$.peers[0].addresses[1]", "'fd00::250::4:1/128'"]),
    ("typo-in-field", "partners/umbrella.yaml", "    keepalive: 25", "    keepalve: 25", "partner",
     ["$.peers[0]", "'keepalve' was unexpected"]),
    ("typo-in-top-field", "gateway.yaml", "deny_logging:", "deny_loging:", "gateway", ["'deny_loging' was unexpected"]),
    ("port-too-big", "services.yaml", "ports: [53]", "ports: [70000]", "services",
     ["$.services.dns.ports[0]", "70000", "maximum of 65535"]),
    ("port-zero-in-range", "services.yaml", "ports: [53]", "ports: [0-53]", "services",
     ["$.services.dns.ports[0]", "'0-53'"]),
    ("listen-port-too-big", "gateway.yaml", "listen_port: 51820", "listen_port: 651820", "gateway",
     ["$.wireguard.listen_port", "651820"]),
    ("policy-test-two-targets", "tests/access.yaml", "can_reach: {service: crm-api}",
     "can_reach: {service: crm-api, classification: internal}", "policy-test", ["$.tests[0].can_reach"]),
]


@pytest.mark.parametrize(("case", "name", "old", "new", "kind", "named"), BAD, ids=[b[0] for b in BAD])
def test_check_jsonschema_rejects_a_bad_file_and_names_the_problem(
        tmp_path: Path, case: str, name: str, old: str, new: str, kind: str, named: list[str]) -> None:
    root = tmp_path / "profiles"
    shutil.copytree(PROFILES, root)
    path = root / name
    text = path.read_text()
    assert text.count(old) == 1, f"{case}: {old!r} is not once in {name}"
    path.write_text(text.replace(old, new))
    result = check_jsonschema("--schemafile", published(kind), path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Schema validation errors were encountered" in result.stdout, result.stdout
    for text_named in named:
        assert text_named in result.stdout, f"{case}: {text_named!r} not in\n{result.stdout}"
    assert check_jsonschema("--schemafile", published("all"), path).returncode == 1
    # gatewayctl itself refuses the same file: the schema flags nothing gatewayctl would take
    assert run_cli("--profiles", str(root), "test" if kind == "policy-test" else "validate").exit_code == 2


# --- the patterns, run by the ECMA-262 engine check-jsonschema uses, against Python's ipaddress -----------------

def schema_patterns(node: Any) -> list[str]:
    if isinstance(node, dict):
        return ([node["pattern"]] if isinstance(node.get("pattern"), str) else []) + [
            p for value in node.values() for p in schema_patterns(value)]
    if isinstance(node, list):
        return [p for item in node for p in schema_patterns(item)]
    return []


def field_schema(kind: str, *path: str) -> dict[str, Any]:
    node: Any = json.loads(published(kind).read_text())
    for part in path:
        node = node[part]
    assert isinstance(node, dict)
    return node


def matches(schema: dict[str, Any], value: str) -> bool:
    """Whether `value` passes the string schema's maxLength and anyOf patterns, evaluated in ECMA 'u' mode."""
    if len(value) > schema.get("maxLength", len(value)):
        return False
    return any(regress.Regex(branch["pattern"], "u").find(value) is not None for branch in schema["anyOf"])


NETWORK = field_schema("services", "$defs", "Service", "properties", "addresses", "items")
INTERFACE = field_schema("gateway", "$defs", "WireGuardSettings", "properties", "addresses", "items")


def python_network(text: str) -> bool:
    """What gatewayctl documents: address text of digits, hex letters, ':', '.' and '/' that ipaddress reads."""
    if not re.fullmatch(r"[0-9A-Fa-f:./]+", text):
        return False
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def python_interface(text: str) -> bool:
    return "/" in text and python_network(text)


def test_every_pattern_compiles_in_unicode_mode_and_the_email_pattern_means_what_python_reads() -> None:
    for kind in ["all", *KINDS]:
        for pattern in schema_patterns(json.loads(published(kind).read_text())):
            regress.Regex(pattern, "u")  # raises RegressError where check-jsonschema would refuse the schema
    email = field_schema("partner", "$defs", "Contact", "properties", "email")["pattern"]
    samples = ["noc@partner.example", "a.b+c@x.co", 'a"b@x.co', "a'b@x.co", "a b@x.co", "a<b@x.co", "a;b@x.co",
               "a{b}@x.co", "a@b@x.co", "a@x.c", "a@x", "jörg@x.example", "a@x.example\n", "\u00a0a@x.co", "@x.co"]
    for sample in samples:
        ecma = regress.Regex(email, "u").find(sample) is not None
        assert ecma == (re.fullmatch(email.strip("^$"), sample) is not None), sample


def test_network_pattern_takes_what_ipaddress_takes_on_the_example_and_edge_spellings() -> None:
    for text in ["10.1.0.0/24", "10.1.0.5", "0.0.0.0/0", "10.0.0.0/024", "::", "::/0", "fd00::/64", "FD00:1::10/128",
                 "::ffff:10.1.2.3/128", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1:2:3:4:5:6:1.2.3.4", "fd00::1.2.3.4"]:
        assert python_network(text) and matches(NETWORK, text), text
    for text in ["10.1.0.0/33", "010.1.0.0/24", "10.1.0", "256.1.0.0/8", "10.1.0.0/", "fd00:::1", "1:2:3:4:5:6:7:8:9",
                 "fd00::/129", "fd00::g", "10.1.0.0/24 ", "fd00::%eth0/64", "1::2::3", "::1.2.3", "1.2.3.4::"]:
        assert not python_network(text) and not matches(NETWORK, text), text


ALPHABET = "0123456789abcdefABCDEF:./"


def spellings() -> st.SearchStrategy[str]:
    """Addresses in the forms people write, then some with one character changed, added or removed."""
    v4 = st.builds(lambda a, n: f"{ipaddress.IPv4Address(a)}/{n}", st.integers(0, 2**32 - 1), st.integers(0, 40))
    v6 = st.builds(lambda a, n, form: f"{form(ipaddress.IPv6Address(a))}/{n}", st.integers(0, 2**128 - 1),
                   st.integers(0, 140), st.sampled_from([str, lambda x: x.exploded, lambda x: str(x).upper(),
                                                         lambda x: x.exploded[:30] + str(ipaddress.IPv4Address(int(x) & 0xFFFFFFFF))]))
    sparse = st.builds(lambda groups: ":".join(groups), st.lists(st.sampled_from(["", "0", "1", "ffff", "1.2.3.4"]),
                                                                 min_size=2, max_size=9))
    base = st.one_of(v4, v6, sparse, v4.map(lambda t: t.split("/")[0]), v6.map(lambda t: t.split("/")[0]))

    def mutate(text: str, where: int, char: str, how: int) -> str:
        i = where % (len(text) + 1)
        return [text, text[:i] + char + text[i:], text[:i] + text[i + 1:], text[:i] + char + text[i + 1:]][how]

    return st.builds(mutate, base, st.integers(0, 60), st.sampled_from(ALPHABET), st.integers(0, 3))


@settings(max_examples=1500, deadline=None)
@given(spellings())
def test_address_patterns_agree_with_ipaddress(text: str) -> None:
    assert matches(NETWORK, text) == python_network(text), text
    assert matches(INTERFACE, text) == python_interface(text), text
