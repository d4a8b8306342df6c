"""The command line: finding the command among global flags, and the demo's argument parsing."""
from harness.cli import _command_name, build_parser


def test_home_named_like_a_command_is_not_the_command():
    # `make demo` runs `harness --home runs demo`: "runs" is the home, and also a command's name.
    argv = ["--home", "runs", "demo"]
    assert _command_name(argv) == "demo"
    args = build_parser(only=_command_name(argv)).parse_args(argv)
    assert args.command == "demo" and args.home == "runs"
    assert args.config.endswith("demo_cpu.yaml") and args.overrides == []


def test_command_after_format_flag_and_unknown_word():
    assert _command_name(["--format", "json", "runs"]) == "runs"
    assert _command_name(["--format", "table"]) is None
    assert _command_name(["nonsense", "runs"]) is None
