"""The ``bundlerl`` command line: one subcommand per module in ``scripts/``.

Each subcommand module exposes ``add_parser(subparsers)`` (registers its flags and sets
``func``) and keeps to argument parsing: the work is done by the library it calls. Modules are
imported only to build the parser; heavy libraries (torch, sentence-transformers, faiss, numba)
are imported inside ``func`` so that ``bundlerl --help`` stays fast.

Errors: bad input (:class:`bundlerl.utils.errors.BundlerlError`, a missing file) is the user's to
fix: one line on stderr and exit status 2 (``--debug`` shows the traceback too). Any other
exception is a bug and propagates with its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from bundlerl.utils.errors import BundlerlError

#: Subcommand modules under ``scripts/``, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "catalog_cmd",
    "train",
    "evaluate",
    "quickstart",
)

#: Exit status of a command stopped by bad input (argparse's own usage errors exit 2 too).
EXIT_BAD_INPUT = 2


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
    parser.add_argument("--debug", action="store_true",
                        help="on bad input, show the traceback after the one-line error (for bug reports)")
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
    except (BundlerlError, FileNotFoundError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"bundlerl {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
