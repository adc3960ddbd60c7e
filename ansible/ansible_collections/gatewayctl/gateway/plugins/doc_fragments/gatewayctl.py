"""The options every gatewayctl module shares (module_utils/gatewayctl.py common_options), documented once."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  netns:
    description: The network namespace gatewayctl acts on or reads instead of the host (C(--netns); for tests and labs).
    type: str
  state_dir:
    description: gatewayctl's state folder (lock, journal, last applied state); default gatewayctl's own.
    type: path
  executable:
    description: The gatewayctl program (a name looked up on PATH and in /usr/local/bin, or a path).
    type: path
    default: gatewayctl
"""
