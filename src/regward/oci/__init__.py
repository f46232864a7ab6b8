"""regward.oci."""
