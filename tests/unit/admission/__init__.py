"""Unit tests of regward.admission."""
