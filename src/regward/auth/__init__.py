"""regward.auth."""
