"""What a world's simulated episodes depend on, as plain data: the key part that every cache of results computed on a
world (tuned-linear fits, off-policy ground truths) shares.

A result computed on a world is another result when the world's config (every field but its name), its data files,
the shopper model or what its candidates and observations are computed by (observation spec, complementarity and
learned-completion fits) change: all of these enter :func:`world_identity`.
"""

from __future__ import annotations

import hashlib
import json

__all__ = ["world_identity", "content_key"]


def world_identity(world) -> dict:
    """Plain data naming ``world`` (a preset name or ``EnvConfig``) exactly: the shopper model's version, the world
    cache key (config + content of its data files), the config without its name, the observation spec's version and
    the complementarity and learned-completion fit versions. No I/O beyond the world cache key's file digests."""
    from bundlerl.candidates.complementarity.fitting import FIT_VERSION as COMPLEMENTARITY_FIT
    from bundlerl.candidates.learned.fitting import FIT_VERSION as COMPLETION_FIT
    from bundlerl.env import get_config
    from bundlerl.env.observation import SPEC_VERSION
    from bundlerl.env.shopper_params import SHOPPER_VERSION
    from bundlerl.env.world_cache import world_cache_key

    config = get_config(world)
    plain = config.to_dict()
    plain.pop("name", None)
    return {"shopper": SHOPPER_VERSION, "world": world_cache_key(config), "config": plain,
            "observation": SPEC_VERSION, "complementarity_fit": COMPLEMENTARITY_FIT, "completion_fit": COMPLETION_FIT}


def content_key(src: dict) -> str:
    """24 hex digits of the SHA-256 of ``src`` as sorted JSON (non-JSON values by ``str``): a cache file's name."""
    return hashlib.sha256(json.dumps(src, sort_keys=True, default=str).encode()).hexdigest()[:24]
