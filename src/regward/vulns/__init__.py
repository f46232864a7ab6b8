"""regward.vulns."""
