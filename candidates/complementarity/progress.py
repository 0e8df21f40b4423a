"""The complementarity fit's progress bar: its stages, what each costs, and when a bar is shown by default.

A fit (a cache miss of :func:`~bundlerl.candidates.complementarity.fitting.fit`) runs up to two passes over the same
stages: ``1/2 validation split`` (components from part of the baskets, then the blend fit on the rest) and
``2/2 all baskets`` (the final components, then the top lists). The stages:

- ``counting pairs``: basket- and user-level pair counts and category counts (one step; fast);
- ``text model, epoch e/E``: the text two-tower of :mod:`bundlerl.candidates.text_comp`, one step per batch; on
  the presets nearly all of the fit's time (~20 s a pass on ``small``, 45-56 s in all);
- ``PPMI embeddings``: the basket and user PPMI SVDs (one step);
- ``blend fit``: pair features of the validation pairs and the two logistic regressions (one step; ~1 s);
- ``top lists``: each item's best complements, one step per block of ``config.chunk`` anchors.

One bar (:func:`bundlerl.utils.progress.progress_bar`, on stderr) counts the steps of both passes; its description
names the pass and stage. It is shown by default (:func:`default_shown`) for fits of more than a couple of seconds,
and never under ``BUNDLERL_PROGRESS=0`` or ``progress=False``.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator

from bundlerl.candidates.complementarity.config import ComplementConfig
from bundlerl.utils.progress import progress_bar, progress_enabled

__all__ = ["FitProgress", "default_shown", "SLOW_TEXT_ROWS", "SLOW_ITEMS"]

#: ``n_pairs * epochs`` from which the text model alone takes over a couple of seconds (two passes of ~9 us per
#: training row and epoch at d = 384 on one core: 100,000 x 2 rows ~ 2 s a pass).
SLOW_TEXT_ROWS = 100_000
#: Catalogue size from which counting, PPMI and top lists take seconds whatever the text model costs.
SLOW_ITEMS = 20_000


def default_shown(config: ComplementConfig, n_items: int) -> bool:
    """Whether a fit with ``config`` over ``n_items`` items is slow enough to show a bar when nobody asked."""
    return config.n_pairs * config.epochs >= SLOW_TEXT_ROWS or n_items >= SLOW_ITEMS


class _Stage:
    """The running stage: ``advance`` counts its steps, ``detail`` renames it (``text model, epoch 2/3``)."""

    def __init__(self, owner: "FitProgress", name: str, steps: int) -> None:
        self._owner, self.name, self.steps, self.done = owner, name, int(steps), 0
        self.shown = owner.show  # callers skip their per-step callbacks when nothing is shown

    def advance(self, n: int = 1) -> None:
        n = min(int(n), self.steps - self.done)
        if n > 0:
            self.done += n
            self._owner.bar.update(n)

    def detail(self, text: str) -> None:
        self._owner.describe(f"{self.name}, {text}")


class FitProgress:
    """One bar over a fit's stages (see the module docstring); a no-op object when not shown.

    :param config: the fit's config (text-model batches, PPMI, top-list blocks are counted from it).
    :param n_items: catalogue size (top-list blocks).
    :param two_passes: whether the validation pass is planned (``blend_fraction > 0`` and >= 20 baskets); call
        :meth:`skip_pass` if it turns out not to run.
    :param progress: the caller's ``progress=`` (None: :func:`default_shown`, off under ``BUNDLERL_PROGRESS=0``).
    """

    def __init__(self, config: ComplementConfig, n_items: int, two_passes: bool, progress: bool | None) -> None:
        self.config = config
        self.show = progress_enabled(progress, default=default_shown(config, n_items))
        self.n_passes = 2 if two_passes else 1
        self.pass_no = 0
        self.pass_name = ""
        self.top_steps = math.ceil(n_items / config.chunk)
        total = self.n_passes * self.components_steps() + (self.blend_steps() if two_passes else 0) + self.top_steps
        self.bar = progress_bar(total, "complementarity", unit="step", show=self.show)

    def text_batches(self) -> int:
        """Steps of the text model: batches per epoch times epochs."""
        return math.ceil(2 * self.config.n_pairs / self.config.batch_size) * self.config.epochs

    def components_steps(self) -> int:
        return 1 + self.text_batches() + (1 if self.config.svd_rank > 0 else 0)

    @staticmethod
    def blend_steps() -> int:
        return 1

    def begin_pass(self, name: str) -> None:
        """Start the next pass (``validation split`` / ``all baskets``)."""
        self.pass_no += 1
        self.pass_name = f"{self.pass_no}/{self.n_passes} {name}" if self.n_passes > 1 else name

    def skip_pass(self) -> None:
        """The validation pass will not run (too few validation pairs): drop its steps from the total."""
        if self.n_passes == 2:
            self.n_passes = 1
            self.pass_no = 0
            if self.show:
                self.bar.total -= self.components_steps() + self.blend_steps()

    def describe(self, stage: str) -> None:
        self.bar.set_description(f"complementarity [{self.pass_name}] {stage}", refresh=True)

    @contextlib.contextmanager
    def stage(self, name: str, steps: int = 1) -> Iterator[_Stage]:
        """Context of one stage of ``steps`` steps; any steps it did not count are counted when it ends (a
        text model with no pairs to train on skips its batches)."""
        st = _Stage(self, name, steps)
        self.describe(name)
        yield st
        st.advance(st.steps - st.done)

    def close(self) -> None:
        self.bar.close()
