"""The patterns free text, names and paths in profiles are held to, and how messages describe them:
plain regular expressions (model/types.py puts them into the schema), so that a command checking
one line of text (revoke's --reason) does not import pydantic and the models."""

from __future__ import annotations

IDENTIFIER_PATTERN = r"^[a-z][a-z0-9_-]{0,30}[a-z0-9]$|^[a-z]$"
INTERFACE_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,14}$"
# No escape before '"': ECMA-262 in Unicode mode (JSON Schema tools, editors) refuses escapes of
# characters that need none; Python and pydantic read the class the same either way.
EMAIL_PATTERN = r"""^[^@\s"'<>;{}]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$"""
ABSOLUTE_PATTERN = r"^/[A-Za-z0-9._/+-]*$"
RELATIVE_PATTERN = r"^[A-Za-z0-9._/+-]+$"
OID_PATTERN = r"^[0-2](\.(0|[1-9][0-9]*))+$"
# Free text is checked by pattern (in pydantic's compiled validator, not a Python call per field):
# one line, something other than spaces; descriptions may have newlines and tabs. Refused everywhere:
# C0 and C1 controls (U+0085 is a line break to some readers), the bidirectional controls (U+061C,
# U+200E/F, U+202A-E, U+2066-9: they make a review show text in another order than it is stored) and
# the Unicode line and paragraph separators U+2028/U+2029 (a new line in a PR comment or a report).
# The escapes stay escapes in the pattern, so the JSON schema shows them (and ECMA, Python and
# pydantic's Rust regex all read them the same way).
_NOT_TEXT = r"\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_NOT_LONG_TEXT = r"\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
TEXT_PATTERN = rf"^[^{_NOT_TEXT}]*[^{_NOT_TEXT}\s][^{_NOT_TEXT}]*$"
LONG_TEXT_PATTERN = rf"^[^{_NOT_LONG_TEXT}]*$"
_NO_BIDI = "bidirectional controls (U+202E, U+2066...) or line separators (U+2028, U+2029, U+0085)"
PATTERN_HELP = {
    TEXT_PATTERN: f"a single line of text without control characters (newline, tab, NUL...), {_NO_BIDI}, and not blank",
    LONG_TEXT_PATTERN: f"text without control characters other than newline and tab, {_NO_BIDI}",
    IDENTIFIER_PATTERN: (
        "lower-case letters, digits, '-' and '_', starting with a letter and not ending in '-' or '_', at most 32 characters"
    ),
    INTERFACE_PATTERN: "a Linux interface name: a letter, then letters, digits, '-' or '_', at most 15 characters",
    EMAIL_PATTERN: "an e-mail address such as noc@partner.example",
    ABSOLUTE_PATTERN: "an absolute path (letters, digits and ._/+- only)",
    RELATIVE_PATTERN: "a relative path (letters, digits and ._/+- only)",
    OID_PATTERN: "an object identifier in dotted form, such as 2.16.840.1.101.3.2.1.3.13",
}
