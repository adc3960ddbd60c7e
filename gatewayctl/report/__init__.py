"""The compliance report: evidence collected from profiles, lint, policy tests, the live host and the journal."""
