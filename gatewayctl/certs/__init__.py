"""Certificate requirements: presets, and verification of a user certificate against them."""
