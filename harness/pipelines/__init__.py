"""Pipelines: the work behind a command, as importable functions the CLI, the dashboards and the
tests call the same way (a command parses arguments and prints; a pipeline trains, labels, evaluates
and stores)."""
