"""deploy/: running several mitmdumps behind HAProxy (README.md, "Running for a team")."""
