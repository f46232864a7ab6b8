"""regward: a supply-chain policy gate for OCI registries."""

__version__ = "0.1.0"
__all__ = ["__version__"]
