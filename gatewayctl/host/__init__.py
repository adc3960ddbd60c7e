"""Everything that touches the kernel lives here, behind the `Host` protocol (see base.py)."""
