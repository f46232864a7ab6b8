"""regward.signatures."""
