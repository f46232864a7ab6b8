"""The `regward` command line: one module per subcommand group, wired in `main.py`."""
