"""Compile validated profiles into the typed intermediate representation."""
