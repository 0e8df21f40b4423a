"""Serving: exported models (``bundlerl export``), the :class:`Recommender` and the HTTP service (``bundlerl serve``).

Public names load lazily (``bundlerl.utils.lazy``) so that importing the package stays cheap.
"""

from __future__ import annotations

from bundlerl.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".export": "export_model",
    ".artifacts": "load_artifacts ModelArtifacts",
    ".recommender": "Recommender Recommendation",
    ".user_state": "UserRequest Event",
    ".exploration": "Exploration",
    ".manifest": "ModelFolderError",
    ".app": "create_app",
})
