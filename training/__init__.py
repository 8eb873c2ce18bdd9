"""Command-line programs: prepare, train, evaluate, search, demo (python -m training.<name>)."""
