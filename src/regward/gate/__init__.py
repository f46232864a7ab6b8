"""regward.gate."""
