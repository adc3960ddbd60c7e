#!/usr/bin/python
# Copyright: gatewayctl contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: wait until the named WireGuard peers have a recent handshake with the gateway."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gatewayctl_handshakes
short_description: Check that WireGuard peers have a recent handshake with the gateway
version_added: "1.0.0"
description:
  - Reads C(wg show INTERFACE latest-handshakes) on the gateway until every peer in O(peers) has completed a
    handshake within the last O(max_age) seconds, or fails after O(wait) seconds naming the peers without one.
  - Works with both WireGuard backends C(wg) knows (the kernel module and userspace implementations such as
    wireguard-go). It reads only; it never changes anything.
  - Use it for peers that keep their tunnel up (a persistent keepalive): a peer that sends nothing has no handshake.
author:
  - gatewayctl contributors
options:
  peers:
    description: Public keys (base64) of the peers that must have a recent handshake.
    type: list
    elements: str
    required: true
  interface:
    description:
      - The WireGuard interface. V(all) reads every interface C(wg) sees (on hosts running wireguard-go in several
        network namespaces that is every one of them).
    type: str
    default: all
  max_age:
    description: How recent, in seconds, a handshake must be.
    type: int
    default: 180
  wait:
    description: How long, in seconds, to wait for the handshakes.
    type: int
    default: 60
notes:
  - Supports check mode (it changes nothing in either mode).
"""

EXAMPLES = r"""
- name: The partner sites with a keepalive have their tunnels up again
  gatewayctl.gateway.gatewayctl_handshakes:
    interface: wg-partners
    peers:
      - LY8sGSa93pktIPfwgveL/HHj4pmM43J83aqf8qFqKAs=
    wait: 90
"""

RETURN = r"""
handshakes:
  description: The latest handshake (UNIX time, 0 for none) of each peer in O(peers) that the interface knows.
  returned: always
  type: dict
missing:
  description: The peers without a handshake in the last O(max_age) seconds (empty on success).
  returned: always
  type: list
  elements: str
"""

import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


def latest(module, wg, interface):
    """{public key: latest handshake} as `wg show` prints it (with `all`, each line starts with the interface)."""
    rc, out, err = module.run_command([wg, "show", interface, "latest-handshakes"])
    if rc != 0:
        module.fail_json(msg=f"wg show {interface} latest-handshakes failed (exit {rc}): {err.strip() or out.strip()}")
    seen = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[-1].isdigit():
            seen[fields[-2]] = max(seen.get(fields[-2], 0), int(fields[-1]))
    return seen


def main():
    module = AnsibleModule(argument_spec=dict(peers=dict(type="list", elements="str", required=True),
                                              interface=dict(type="str", default="all"),
                                              max_age=dict(type="int", default=180), wait=dict(type="int", default=60)),
                           supports_check_mode=True)
    params = module.params
    wg = module.get_bin_path("wg", required=True)
    deadline = time.time() + max(0, params["wait"])
    while True:
        seen = latest(module, wg, params["interface"])
        fresh_after = time.time() - params["max_age"]
        missing = [key for key in params["peers"] if seen.get(key, 0) < fresh_after]
        if not missing or time.time() >= deadline:
            break
        time.sleep(min(2.0, max(0.1, deadline - time.time())))
    handshakes = {key: seen[key] for key in params["peers"] if key in seen}
    if missing:
        unknown = [key for key in missing if key not in seen]
        note = f" (not peers of this interface: {', '.join(unknown)})" if unknown else ""
        module.fail_json(msg=f"no WireGuard handshake within {params['max_age']} s on {params['interface']} from: "
                             f"{', '.join(missing)}{note}", handshakes=handshakes, missing=missing)
    module.exit_json(changed=False, handshakes=handshakes, missing=[])


if __name__ == "__main__":
    main()
