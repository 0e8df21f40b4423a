"""The ``bundlerl`` command line: one subcommand per module in ``scripts/``.

Each subcommand module exposes ``add_parser(subparsers)`` (registers its flags and sets
``func``) and keeps to argument parsing: the work is done by the library it calls. Modules are
imported only to build the parser; heavy libraries (torch, sentence-transformers, faiss, numba)
are imported inside ``func`` so that ``bundlerl --help`` stays fast.

Errors: a bad flag value is refused while the command line is parsed (the argument types of
:mod:`bundlerl.scripts.flags`): one line naming the flag, exit status 2, before any work starts. Bad input
found later (:class:`bundlerl.utils.errors.BundlerlError`, a missing file) is the user's to
fix too: one line on stderr and exit status 2 (``--debug`` shows the traceback too). Any other
exception is a bug and propagates with its traceback. Checks that need several flags together (a world from
``--preset`` + ``--env-set``, hyperparameters from ``--set``, what ``--resume`` keeps) run right after parsing, in the
subcommand's ``check(args)``, still before any heavy import or work.

The switches every command shares (``--debug``, ``--no-progress``) go before or after the subcommand name.
``--no-progress`` turns every bar off, library stages included (the world build, encoding, fitting), by setting
``BUNDLERL_PROGRESS=0`` for the command's duration (:mod:`bundlerl.utils.progress`). Ctrl-C is one line and exit status 130 (``bundlerl train``
saves a checkpoint first and names the command that continues the run). A warning of bundlerl's own (a damaged
file passed over, ...) is one line on stderr too.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import traceback
import warnings

from bundlerl.utils.errors import BundlerlError, keyboard_interrupt_in

#: Subcommand modules under ``scripts/``, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "catalog_cmd",
    "train",
    "evaluate",
    "quickstart",
    "complete_cmd",
    "export_cmd",
    "serve_cmd",
    "log_cmd",
    "ope",
)

#: Exit status of a command stopped by bad input (argparse's own usage errors exit 2 too).
EXIT_BAD_INPUT = 2

#: Exit status of a command stopped by Ctrl-C (128 + SIGINT, the shell's convention).
EXIT_INTERRUPTED = 130


class OneLineParser(argparse.ArgumentParser):
    """argparse's parser whose usage errors are one line (``bundlerl train: error: argument --seed: ...``) instead
    of the usage block and the error; the subcommands' parsers are of this class too."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="bundlerl",
        description=(
            "bundlerl: learn to recommend product bundles with reinforcement learning. "
            "Simulated shoppers with text-embedded tastes, FAISS + complementarity candidate bundles, "
            "PPO / DQN agents and their evaluation against baselines and oracles."
        ),
        epilog="Run 'bundlerl <command> --help' for the flags of one command.",
    )
    from bundlerl import __version__

    parser.add_argument("--version", action="version", version=f"bundlerl {__version__}")
    _add_shared_switches(parser, False)
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name in COMMANDS:
        importlib.import_module(f"bundlerl.scripts.{name}").add_parser(sub)
    for p in sub.choices.values():
        # after the subcommand too: its default must not overwrite a switch given before it
        _add_shared_switches(p, argparse.SUPPRESS)
    return parser


def _add_shared_switches(p: argparse.ArgumentParser, default) -> None:
    """``--debug`` and ``--no-progress``: on the top-level parser (``default`` False) and on every subcommand's
    (``default`` SUPPRESS, so that ``bundlerl --debug train`` and ``bundlerl train --debug`` both set it)."""
    helps = {"--debug": "on bad input, show the traceback after the one-line error (for bug reports)",
             "--no-progress": "no progress bars in any stage (world build, encoding, fitting, training, evaluation); "
                              "also: BUNDLERL_PROGRESS=0"}
    for flag, text in helps.items():
        own = p._option_string_actions.get(flag)
        if own is not None:  # a command that declares the switch itself: its default must not overwrite it either
            own.default = default
        else:
            p.add_argument(flag, action="store_true", default=default, help=text)


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit status (also for a usage error
    or ``--help``, which argparse ends with SystemExit)."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # said by the subcommand's parser, whose --help lists its flags
            (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            command = sub.choices.get(getattr(args, "command", None) or "", parser)
            command.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        with _one_line_warnings(args.command), _progress_off(args.no_progress):
            check = getattr(args, "check", None)
            if check is not None:  # the flags' joint checks: still parse time, before any work
                try:
                    check(args)
                except BundlerlError as exc:
                    if args.debug:
                        traceback.print_exc()
                    print(f"bundlerl {args.command}: error: {exc} (see 'bundlerl {args.command} --help')",
                          file=sys.stderr)
                    return EXIT_BAD_INPUT
            args.whole_process = argv is None  # the process's own command line (what it may do to its signals)
            return int(args.func(args) or 0)
    except (BundlerlError, FileNotFoundError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"bundlerl {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (KeyboardInterrupt, SystemError) as exc:
        interrupt = keyboard_interrupt_in(exc)  # a Ctrl-C inside numba code arrives as a chained SystemError
        if interrupt is None:
            raise
        if args.debug:
            traceback.print_exc()
        exc = interrupt if isinstance(exc, SystemError) else exc
        resume = getattr(exc, "resume_command", "")  # bundlerl.experiment.training.TrainingInterrupted
        print(f"bundlerl {args.command}: interrupted" + (f"; continue with: {resume}" if resume else
                                                          f" ({exc})" if str(exc) else ""), file=sys.stderr)
        return EXIT_INTERRUPTED


@contextlib.contextmanager
def _progress_off(off: bool):
    """``BUNDLERL_PROGRESS=0`` while the command runs when ``off`` (every stage's bar reads it), restored after."""
    from bundlerl.utils.progress import PROGRESS_ENV

    if not off:
        yield
        return
    before = os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = before


@contextlib.contextmanager
def _one_line_warnings(command: str):
    """bundlerl's own warnings (categories defined in bundlerl) as one line ``bundlerl CMD: warning: ...``."""
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if category.__module__.startswith("bundlerl."):
            print(f"bundlerl {command}: warning: {message}", file=file or sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


if __name__ == "__main__":
    sys.exit(main())
