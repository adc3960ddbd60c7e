"""Rule families, one module each."""
