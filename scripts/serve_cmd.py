"""``bundlerl serve``: the HTTP service over an exported model folder (uvicorn workers of
``bundlerl.serving.app``).

Argument parsing only: the app is ``bundlerl.serving.app.create_app``; the workers read their settings from the
environment this command sets (``bundlerl.serving.app.app_from_env``)."""

from __future__ import annotations

import argparse

from bundlerl.scripts.flags import SEED, ExistingFolder, Host, Integer, OutputFolder

HELP = "serve bundle recommendations over HTTP from an exported model folder"

DESCRIPTION = """\
Start the HTTP service (FastAPI under uvicorn) on MODEL_DIR, written by 'bundlerl export'.
Endpoints: POST /v1/recommend, /v1/recommend/batch, /v1/feedback, /v1/items; GET /v1/items/{id},
/v1/model, /healthz, /readyz; OpenAPI docs at /docs. Writes (feedback, items) need the header
X-API-Key equal to $BUNDLERL_API_KEY. Impressions and feedback are journaled to --log-dir
(default MODEL_DIR/logs); cold-start items go to MODEL_DIR/items/, shared by every worker.
"""

EPILOG = """\
examples:
  BUNDLERL_API_KEY=secret bundlerl serve models/small-ppo --port 8000 --workers 2
"""


def add_parser(subparsers) -> None:
    from bundlerl.encoders.onnx_sentence import PRECISIONS
    from bundlerl.serving.app import MAX_BATCH, MAX_BODY

    p = subparsers.add_parser("serve", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL_DIR", type=ExistingFolder(("manifest.json",), "model folder made by "
                                                                                          "'bundlerl export'"))
    p.add_argument("--host", default="127.0.0.1", type=Host(), help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=Integer(1, 65535), default=8000, help="port (default: 8000)")
    p.add_argument("--workers", type=Integer(1, 64), default=1, help="worker processes (default: 1)")
    p.add_argument("--log-dir", type=OutputFolder(), default=None, help="journal folder (default: MODEL_DIR/logs)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the exploration draws (default: 0)")
    p.add_argument("--fsync", action="store_true",
                   help="fsync each journal record before answering (survives power loss; ~1 ms per request)")
    p.add_argument("--max-body", type=Integer(1024), default=MAX_BODY,
                   help=f"request size limit in bytes (default: {MAX_BODY})")
    p.add_argument("--max-batch", type=Integer(1, 1024), default=MAX_BATCH,
                   help="largest dynamic batch of concurrent /v1/recommend requests a worker answers in one call "
                        f"(default: {MAX_BATCH}; 1: one at a time)")
    p.add_argument("--encoder-precision", choices=PRECISIONS, default="fp32",
                   help="weights of the encoder of new profile texts and new items: fp32, the model's own vectors "
                        "(default), or int8, about 3x less CPU per new text at cosine ~0.99 to them (BENCHMARKS.md, "
                        "Serving)")
    p.set_defaults(func=run)


def run(args) -> int:
    import os

    import uvicorn

    from bundlerl.serving.manifest import read_manifest

    read_manifest(args.model)  # a damaged or tampered folder: one line and exit 2, before any worker starts
    os.environ.update(BUNDLERL_SERVE_MODEL=str(os.path.abspath(args.model)),
                      BUNDLERL_SERVE_LOGS=str(os.path.abspath(args.log_dir)) if args.log_dir else "",
                      BUNDLERL_SERVE_SEED=str(args.seed), BUNDLERL_SERVE_FSYNC="1" if args.fsync else "0",
                      BUNDLERL_SERVE_MAX_BODY=str(args.max_body), BUNDLERL_SERVE_MAX_BATCH=str(args.max_batch),
                      BUNDLERL_SERVE_ENCODER=args.encoder_precision)
    uvicorn.run("bundlerl.serving.app:app_from_env", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level="warning", access_log=False)
    return 0
