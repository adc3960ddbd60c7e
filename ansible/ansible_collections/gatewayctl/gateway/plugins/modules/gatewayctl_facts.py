#!/usr/bin/python
# Copyright: gatewayctl contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: a gateway's drift state, last applied revision and digest, as facts."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gatewayctl_facts
short_description: Drift state, last applied revision and digest of a gatewayctl gateway
version_added: "1.0.0"
description:
  - Runs C(gatewayctl drift --format json) on the gateway (read-only) and returns the result as the fact
    C(gatewayctl), with whether an apply awaits confirmation and which commit the profiles checkout is at.
  - Drift (gatewayctl's exit 1 or 3) is a result, not a failure; an error of gatewayctl (exit 2) fails the task
    with gatewayctl's own text.
author:
  - gatewayctl contributors
options:
  profiles:
    description: The profiles folder on the gateway.
    type: path
    required: true
  gateway:
    description: In an estate of several gateways, the gateway this host is (C(--gateway)).
    type: str
extends_documentation_fragment:
  - gatewayctl.gateway.gatewayctl
notes:
  - Supports check mode (it changes nothing in either mode).
seealso:
  - module: gatewayctl.gateway.gatewayctl_apply
"""

EXAMPLES = r"""
- name: Read the gateway's drift
  gatewayctl.gateway.gatewayctl_facts:
    profiles: /srv/gatewayctl/profiles

- name: Stop when the gateway is not what was applied
  ansible.builtin.assert:
    that: ansible_facts.gatewayctl.in_sync
"""

RETURN = r"""
ansible_facts:
  description: Facts about the gateway.
  returned: always
  type: dict
  contains:
    gatewayctl:
      description: The gateway's state.
      type: dict
      contains:
        gateway:
          description: The gateway asked about (O(gateway)), or null.
          type: str
        status:
          description: C(in-sync), C(host-changed) (changed outside gatewayctl) or C(profiles-not-applied).
          type: str
        exit_code:
          description: gatewayctl drift's exit status (0, 1 or 3).
          type: int
        in_sync:
          description: Whether the host matches the last apply and the profiles.
          type: bool
        last_apply:
          description: C(revision), C(dirty), C(digest), C(applied_at) of the last apply, or null if never applied.
          type: dict
        findings:
          description: Each difference, with C(source) (host or profiles), C(kind), C(partner), C(subject), C(detail).
          type: list
          elements: dict
        revocations:
          description: Emergency revocations in force on this gateway.
          type: list
          elements: str
        pending_confirm:
          description: Whether an apply waits for M(gatewayctl.gateway.gatewayctl_confirm).
          type: bool
        checkout_revision:
          description: The commit the profiles checkout is at, or null outside git.
          type: str
        checked_at:
          description: When drift was checked (UTC).
          type: str
"""

import json  # noqa: E402
import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.gatewayctl.gateway.plugins.module_utils.gatewayctl import (  # noqa: E402
    Checkout,
    Gatewayctl,
    common_options,
)


def checkout_revision(module, profiles):
    """The commit of the profiles' checkout, or None outside git (read without git's discovery)."""
    if Checkout._top(os.path.realpath(profiles)) is None:
        return None
    return Checkout(module, profiles).head()


def main():
    module = AnsibleModule(argument_spec=common_options(), supports_check_mode=True)
    ctl = Gatewayctl(module)
    _, out, _ = ctl.run("drift", ["--format", "json"], profiles=module.params["profiles"], ok=(0, 1, 3))
    try:
        drift = json.loads(out)
    except ValueError:
        module.fail_json(msg=f"gatewayctl drift printed no JSON report: {out[:400]}")
    facts = {
        "gateway": module.params["gateway"], "status": drift["status"], "exit_code": drift["exit_code"],
        "in_sync": drift["exit_code"] == 0, "last_apply": drift.get("last_apply"), "findings": drift.get("findings", []),
        "revocations": drift.get("revocations", []), "checked_at": drift.get("checked_at"),
        "pending_confirm": ctl.pending(), "checkout_revision": checkout_revision(module, module.params["profiles"]),
    }
    module.exit_json(changed=False, ansible_facts={"gatewayctl": facts})


if __name__ == "__main__":
    main()
