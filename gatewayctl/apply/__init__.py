"""Applying a plan to the host: ordered steps, verification, rollback, confirmation."""
