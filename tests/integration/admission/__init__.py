"""Admission webhooks against a real registry, the gate and podman."""
