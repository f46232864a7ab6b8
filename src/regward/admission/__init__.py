"""regward.admission."""
