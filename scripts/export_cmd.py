"""``bundlerl export``: a trained run (or a baseline) as a model folder for ``bundlerl serve``.

Argument parsing only: the work is ``bundlerl.serving.export.export_model``."""

from __future__ import annotations

import argparse

from bundlerl.agents.tuned_linear import OBSERVABLE_POLICIES, TUNED_LINEAR
from bundlerl.experiment.run_dir import MODEL_CHOICES
from bundlerl.scripts.flags import RUN_DIR, ExistingFile, OutputFolder, add_world_flags, world_from_args

HELP = "export a trained run (or a baseline) as a model folder for 'bundlerl serve'"

DESCRIPTION = """\
Write MODEL_DIR: the run's policy as ONNX (or a baseline's name), the observable catalogue (ids, titles,
prices, embeddings), the FAISS index, the complementarity model's tables, the observation projection,
and manifest.json (format version, created, source run, package versions, encoder, observation spec,
every file's SHA-256). 'bundlerl serve' verifies the hashes and never unpickles anything.
"""

EPILOG = """\
examples:
  bundlerl export runs/small__ppo__0__20260101-120000 --out models/small-ppo
  bundlerl export --baseline complement-greedy --preset small --out models/small-cg
  bundlerl export --baseline tuned-linear --weights tuned.json --preset small --out models/small-tl
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("export", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", nargs="?", metavar="RUN_DIR", type=RUN_DIR, default=None,
                   help="run directory made by 'bundlerl train' (or use --baseline)")
    p.add_argument("--baseline", choices=OBSERVABLE_POLICIES, default=None,
                   help=f"export this observable baseline instead of a run ({TUNED_LINEAR}: its fitted weights)")
    p.add_argument("--weights", default=None, type=ExistingFile(),
                   help=f"with --baseline {TUNED_LINEAR}: its weights JSON (default: the world's cached fit, or a "
                        "fit now)")
    add_world_flags(p, "with --baseline; default: small")
    p.add_argument("--which", choices=MODEL_CHOICES, default=MODEL_CHOICES[0],
                   help=f"which model of the run (default: {MODEL_CHOICES[0]}, falling back to final)")
    p.add_argument("--out", required=True, type=OutputFolder(), help="the model folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model folder at --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (also: BUNDLERL_PROGRESS=0)")
    p.set_defaults(func=run)


def run(args) -> int:
    from bundlerl.serving.export import export_model
    from bundlerl.serving.manifest import ModelFolderError

    if (args.run is None) == (args.baseline is None):
        raise ModelFolderError("give a RUN_DIR or --baseline NAME (one of them)")
    world = world_from_args(args, default="small") if args.baseline else None
    out = export_model(args.out, run_dir=args.run, which=args.which, baseline=args.baseline,
                       preset=world if world is not None else "small", weights=args.weights, overwrite=args.overwrite,
                       progress=False if args.no_progress else None)
    print(f"exported: {out} (serve it with: bundlerl serve {out})")
    return 0
