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
  - With O(apply_id) (the RV(gatewayctl.gateway.gatewayctl_apply#module:apply_id) of the apply to keep) it confirms that
    apply and no other; the task fails when the timer already rolled it back ("too late"), and an apply confirmed
    before is C(changed=false).
  - Without O(apply_id) it confirms whatever is pending; nothing pending is C(changed=false) (an apply that changed
    nothing arms no timer). A rollout gives O(apply_id) so that a gateway whose checks outlasted the timer stops it.
  - In check mode nothing is confirmed; C(changed) says whether a change is pending.
author:
  - gatewayctl contributors
options:
  apply_id:
    description: The apply to confirm (from M(gatewayctl.gateway.gatewayctl_apply)); empty or unset for any pending one.
    type: str
  gateway:
    description: In an estate of several gateways, the gateway this host is (C(--gateway)).
    type: str
  profiles:
    description: The profiles folder (not read by C(confirm); accepted so that one set of variables serves every module).
    type: path
extends_documentation_fragment:
  - gatewayctl.gateway.gatewayctl
notes:
  - Supports check mode.
seealso:
  - module: gatewayctl.gateway.gatewayctl_apply
"""

EXAMPLES = r"""
- name: Keep the change of this play's apply, once the checks passed
  gatewayctl.gateway.gatewayctl_confirm:
    gateway: gw-fra-1
    apply_id: "{{ applied.apply_id }}"
  when: applied.confirm_pending
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


def settle(module, ctl, apply_id):
    """What to do about `apply_id` when it is not the pending apply: exit (already confirmed) or fail."""
    events = [e.get("event") for e in ctl.journal_events(apply_id)]
    if "confirmed" in events:
        module.exit_json(changed=False, confirmed=False, msg=f"apply {apply_id} was confirmed before")
    rolled = [e for e in ctl.journal_events(apply_id) if e.get("event") == "rolled-back"]
    if rolled:
        module.fail_json(msg=f"too late: apply {apply_id} was rolled back at {rolled[-1].get('time')} "
                             f"({rolled[-1].get('reason', 'not confirmed in time')})")
    pending = ctl.pending_id()
    module.fail_json(msg=f"apply {apply_id} is not pending on this gateway" +
                         (f" (apply {pending} is)" if pending else " (nothing is)"))


def main():
    spec = common_options(profiles_required=False)
    spec.update(apply_id=dict(type="str"))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    ctl = Gatewayctl(module)
    apply_id, pending = module.params["apply_id"] or None, ctl.pending_id()
    if apply_id and pending != apply_id:
        settle(module, ctl, apply_id)
    if module.check_mode or pending is None:
        module.exit_json(changed=pending is not None, confirmed=False)
    # exit 1 is "too late: rolled back at ..." (the timer fired meanwhile) and fails the task with that text
    _, out, _ = ctl.run("confirm", profiles=module.params["profiles"])
    confirmed = out.strip().startswith("confirmed")
    module.exit_json(changed=confirmed, confirmed=confirmed, stdout=out)


if __name__ == "__main__":
    main()
