"""The policy linter: rules with stable codes, suppressions an auditor accepts, text/JSON/SARIF."""
