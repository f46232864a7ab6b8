"""regward.policy."""
