"""The gate tests' key pair and signer, shared with the CLI tests."""

from tests.integration.gate.conftest import keys, sign  # noqa: F401
