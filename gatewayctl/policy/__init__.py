"""Questions about the compiled policy: can this flow pass, and which grant allows it."""
