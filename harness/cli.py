"""`harness` command line. Each command lives in its own module, listed in ONE table below.

A command module defines `add_arguments(parser)` and `run(args) -> int`. Global flags: `--home`
(the harness home, also HARNESS_HOME, default ./runs), `--store URL` (the database, also HARNESS_STORE:
SQLite by default, or PostgreSQL) and `--format table|json`.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# name -> (module, help). New commands go here and nowhere else.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("harness.commands.train", "train a policy or reward model from a config (sft, dpo, oaif, reward_model, rlhf)"),
    "runs": ("harness.commands.runs", "list runs with status and last metrics"),
    "tasks": ("harness.commands.tasks", "list or validate task definitions"),
    "import-labels": ("harness.commands.import_labels", "import human (and published AI) preference labels"),
    "judge": ("harness.commands.judge", "label pairs from the store, a dataset or a run's samples with a judge"),
    "eval": ("harness.commands.eval", "win rate of a policy against a baseline, with CIs"),
    "leaderboard": ("harness.commands.leaderboard", "Bradley-Terry ratings from pairwise labels"),
    "leaderboard-run": ("harness.commands.leaderboard_run", "judge a benchmark's model answers pairwise, then Bradley-Terry"),
    "export": ("harness.commands.export", "pairs and labels as a Hugging Face dataset: TRL preference format or every label"),
    "agreement": ("harness.commands.agreement", "annotator agreement with a reference, position and length bias"),
    "validity": ("harness.commands.validity", "a judge's validity card: position/length bias, agreement with humans"),
    "study": ("harness.commands.study", "studies: controllability of an annotator through OAIF"),
    "dashboard": ("harness.commands.dashboard", "open the Streamlit dashboards on the store"),
    "demo": ("harness.commands.demo", "the main job: OAIF vs offline DPO vs RLAIF on the embedded model"),
    "raters": ("harness.commands.raters", "raters of a shared store: add, passwd, list, overlap (the Label page's logins)"),
    "replicate": ("harness.commands.replicate", "`make study`: the OAIF/robust-DPO papers' comparisons, 3 seeds, a verdict per cell"),
    "overopt": ("harness.commands.overopt", "reward over-optimisation (Gao et al. 2022): proxy and gold vs KL, best-of-n and RLOO"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=None, help="harness home (default: $HARNESS_HOME or ./runs)")
    parser.add_argument("--store", default=None, metavar="URL",
                        help="the label store's database: sqlite:///path or postgresql://user:pass@host/db "
                             "(default: $HARNESS_STORE, else <home>/harness.db)")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        # Global flags are accepted after the command too (`harness runs --format json`).
        p.add_argument("--home", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        p.add_argument("--store", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        p.add_argument("--format", choices=("table", "json"), default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        if only is None or only == name:
            try:
                importlib.import_module(module).add_arguments(p)
            except ModuleNotFoundError as e:
                if e.name != module:
                    raise
                p.set_defaults(_missing=module)
    return parser


def _command_name(argv: list[str]) -> str | None:
    """The first positional argument, skipping the values of global flags (`--home runs` is a home, not
    the `runs` command)."""
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--home", "--store", "--format"):
            skip = True
        elif not a.startswith("-"):
            return a if a in COMMANDS else None
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_name(argv)
    parser = build_parser(only=command)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    if getattr(args, "_missing", None):
        print(f"harness {args.command}: not available in this build ({args._missing} missing)", file=sys.stderr)
        return 2
    if args.home is not None:
        os.environ["HARNESS_HOME"] = args.home
    if args.store is not None:  # through the environment: every Store, subprocess and dashboard sees it
        os.environ["HARNESS_STORE"] = args.store
    from .config import ConfigError
    from .store import StoreError

    try:
        return int(importlib.import_module(COMMANDS[args.command][0]).run(args) or 0)
    except (ConfigError, StoreError, ValueError, OSError) as e:
        # Bad input (or a full disk, a directory for a file) is the user's to fix: one clear line,
        # no traceback; OSError's text names the file.
        if os.environ.get("HARNESS_DEBUG"):
            raise
        print(f"harness {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
