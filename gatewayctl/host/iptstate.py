"""Pure parser of `iptables-legacy-save` / `ip6tables-legacy-save` output into base chains with effects.

iptables-legacy runs in the kernel's x_tables, beside nftables and out of reach of libnftables:
its built-in chains are base chains on the same hooks, at the priorities of their tables.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Iterator

from gatewayctl.host.bypassstate import BaseChain, Effect

HOOKS = {"PREROUTING": "prerouting", "INPUT": "input", "FORWARD": "forward", "OUTPUT": "output",
         "POSTROUTING": "postrouting"}
PRIORITY = {"raw": -300, "mangle": -150, "filter": 0, "security": 50}
NAT_PRIORITY = {"PREROUTING": -100, "OUTPUT": -100, "INPUT": 100, "POSTROUTING": 100}
_HARMLESS = {"ACCEPT", "RETURN", "LOG", "NFLOG", "ULOG", "AUDIT", "TRACE", "CLASSIFY", "TCPMSS", "CHECKSUM",
             "CONNSECMARK", "SECMARK"}
_VALUE_OPTIONS = {"DNAT": "--to-destination", "SNAT": "--to-source", "REDIRECT": "--to-ports", "TEE": "--gateway",
                  "MARK": "--set-xmark", "CONNMARK": "--set-xmark", "NFQUEUE": "--queue-num", "TPROXY": "--on-port",
                  "NETMAP": "--to"}
_Rule = tuple[tuple[frozenset[str], ...], tuple[frozenset[str], ...], bool, list[str]]


def parse_legacy(text: str, family: str) -> list[BaseChain]:
    """The built-in chains of every table in a save listing, with what their rules can do."""
    found = []
    for table, policies, rules in _tables(text):
        for chain, policy in policies.items():
            if chain not in HOOKS:
                continue
            effects, closed = _walk(rules, chain, (), (), (chain,))
            if policy == "DROP" and not closed:
                effects.append(Effect("policy drop", (chain,)))
            priority = NAT_PRIORITY[chain] if table == "nat" else PRIORITY.get(table, 0)
            found.append(BaseChain("iptables-legacy", family, table, chain, table, HOOKS[chain], priority,
                                   policy.lower(), (), tuple(effects)))
    return found


def _tables(text: str) -> Iterator[tuple[str, dict[str, str], dict[str, list[_Rule]]]]:
    table, policies, rules = "", {}, {}  # type: tuple[str, dict[str, str], dict[str, list[_Rule]]]
    for line in text.splitlines():
        if line.startswith("*"):
            table, policies, rules = line[1:].strip(), {}, {}
        elif line.startswith(":"):
            name, policy = line[1:].split()[:2]
            policies[name] = policy
        elif line.startswith("-A "):
            args = shlex.split(line)
            rules.setdefault(args[1], []).append(_rule(args[2:]))
        elif line.strip() == "COMMIT":
            yield table, policies, rules


def _rule(args: list[str]) -> _Rule:
    """(interface matches, source matches, whether it matches every packet, target and its options) of one
    `-A` line."""
    ifs: list[frozenset[str]] = []
    srcs: list[frozenset[str]] = []
    bare, target = False, []  # type: tuple[bool, list[str]]
    negate = False
    for i, arg in enumerate(args):
        if arg == "!":
            negate = True
            continue
        value = args[i + 1] if i + 1 < len(args) else ""
        if arg in ("-i", "--in-interface") and not negate:
            ifs.append(frozenset({value[:-1] + "*" if value.endswith("+") else value}))
        elif arg in ("-s", "--source") and not negate:
            srcs.append(frozenset(str(ipaddress.ip_network(v, strict=False)) for v in value.split(",")))
        elif arg in ("-j", "--jump", "-g", "--goto"):
            bare, target = i == 0, args[i + 1:]
            break
        negate = False
    return tuple(ifs), tuple(srcs), bare, target


def _walk(rules: dict[str, list[_Rule]], chain: str, ifs: tuple[frozenset[str], ...],
          srcs: tuple[frozenset[str], ...], path: tuple[str, ...]) -> tuple[list[Effect], bool]:
    found: list[Effect] = []
    for r_ifs, r_srcs, bare, target in rules.get(chain, []):
        all_ifs, all_srcs = ifs + r_ifs, srcs + r_srcs
        name = target[0] if target else ""
        if name in rules and name not in path:  # a user chain
            found += _walk(rules, name, all_ifs, all_srcs, (*path, name))[0]
        elif name and name not in _HARMLESS:
            found.append(Effect(_describe(name, target[1:]), path, all_ifs, all_srcs))
        if bare and name in ("ACCEPT", "DROP", "REJECT"):
            return found, True
    return found, False


def _describe(name: str, options: list[str]) -> str:
    if name == "CT" and "--notrack" in options:
        return "notrack"
    if name == "CT" and "--helper" in options:
        return f"ct helper {options[options.index('--helper') + 1]} (its related flows pass RELATED rules)"
    option = _VALUE_OPTIONS.get(name)
    if option and option in options[:-1]:
        return f"{name} {option} {options[options.index(option) + 1]}"
    if name in ("MARK", "CONNMARK") and options:
        return f"{name} {' '.join(options[:2])}"
    return name
