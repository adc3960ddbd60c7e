# make bench: every benchmark, side by side with Aerleon (as root; about 22 minutes on 2 cores).
# Writes bench/results.md and bench/results.json. See bench/README.md.
.PHONY: bench test

bench:
	.venv/bin/python bench/compare.py

test:
	.venv/bin/python -m pytest
