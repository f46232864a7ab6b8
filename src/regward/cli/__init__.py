"""regward.cli."""
