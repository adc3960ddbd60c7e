"""Desired state, and the pure diff between it and the live host."""
