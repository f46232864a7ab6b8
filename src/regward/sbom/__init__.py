"""regward.sbom."""
