"""Model manifest and install / convert tooling."""
