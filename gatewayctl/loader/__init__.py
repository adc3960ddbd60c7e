"""Loading profile files: YAML 1.2 reading and schema validation."""
