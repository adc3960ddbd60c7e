#!/usr/bin/python
# Copyright: gatewayctl contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: confirm the pending change of `gatewayctl apply --confirm-timeout`."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gatewayctl_confirm
short_description: Keep the change of the last gatewayctl apply with a confirm timeout
version_added: "1.0.0"
description:
  - Runs C(gatewayctl confirm) on the gateway, which stops the dead-man timer that
    M(gatewayctl.gateway.gatewayctl_apply) armed with O(gatewayctl.gateway.gatewayctl_apply#module:confirm_timeout).
  - Idempotent; nothing pending means C(changed=false). When the timer has already rolled the change back the task
    fails (gatewayctl's exit 1, "too late").
  - In check mode nothing is confirmed; C(changed) says whether a change is pending.
author:
  - gatewayctl contributors
options:
  gateway:
    description: In an estate of several gateways, the gateway this host is (C(--gateway)).
    type: str
  profiles:
    description: The profiles folder (not read by C(confirm); accepted so that one set of variables serves every module).
    type: path
  netns:
    description: The network namespace the apply was made in (C(--netns); for tests and labs).
    type: str
  state_dir:
    description: gatewayctl's state folder; default gatewayctl's own.
    type: path
  executable:
    description: The gatewayctl program (a name looked up on PATH and in /usr/local/bin, or a path).
    type: path
    default: gatewayctl
notes:
  - Supports check mode.
seealso:
  - module: gatewayctl.gateway.gatewayctl_apply
"""

EXAMPLES = r"""
- name: Keep the change, once the checks passed
  gatewayctl.gateway.gatewayctl_confirm:
    gateway: gw-fra-1
"""

RETURN = r"""
changed:
  description: Whether a pending change was confirmed (in check mode, whether one is pending).
  returned: always
  type: bool
confirmed:
  description: Whether this task confirmed a change.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.gatewayctl.gateway.plugins.module_utils.gatewayctl import (  # noqa: E402
    Gatewayctl,
    common_options,
)


def main():
    module = AnsibleModule(argument_spec=common_options(profiles_required=False), supports_check_mode=True)
    ctl = Gatewayctl(module)
    if module.check_mode:
        module.exit_json(changed=ctl.pending(), confirmed=False)
    # exit 1 is "too late: rolled back at ..." and fails the task with that text
    _, out, _ = ctl.run("confirm", profiles=module.params["profiles"])
    confirmed = out.strip().startswith("confirmed")
    module.exit_json(changed=confirmed, confirmed=confirmed, stdout=out)


if __name__ == "__main__":
    main()
