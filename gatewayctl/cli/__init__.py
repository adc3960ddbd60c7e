"""The command line: each command composes library stages; no stage imports click."""
