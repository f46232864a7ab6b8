"""regward.store."""
