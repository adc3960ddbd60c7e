"""Errors from the host, phrased for the engineer at the console."""


class HostError(Exception):
    """Something on the host refused or failed; the message says what and what to do."""
