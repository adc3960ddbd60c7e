"""gatewayctl: declarative partner access for a WireGuard gateway."""

__version__ = "0.1.0"
