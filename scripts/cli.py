"""The ``bundlerl`` command line: one subcommand per module in ``scripts/``.

Each subcommand module exposes ``add_parser(subparsers)`` (registers its flags and sets
``func``). Modules are imported only to build the parser; heavy libraries (torch,
sentence-transformers, faiss) are imported inside ``func`` so that ``bundlerl --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: Subcommand modules under ``scripts/``, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "catalog_cmd",
    "train",
    "evaluate",
    "quickstart",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bundlerl",
        description=(
            "bundlerl: learn to recommend product bundles with reinforcement learning. "
            "Simulated shoppers with text-embedded tastes, FAISS + complementarity candidate bundles, "
            "PPO / DQN agents, offline evaluation and serving."
        ),
        epilog="Run 'bundlerl <command> --help' for the flags of one command.",
    )
    from bundlerl import __version__

    parser.add_argument("--version", action="version", version=f"bundlerl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name in COMMANDS:
        importlib.import_module(f"bundlerl.scripts.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        # Bad input is the user's to fix: say what is wrong without a traceback.
        print(f"bundlerl {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
