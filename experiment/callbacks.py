"""The SB3 callbacks of a training run (:func:`bundlerl.experiment.training.train`), each one job, state as
attributes:

- :class:`PeriodicEvaluation`: evaluates the model on fixed episodes every ``eval_freq`` timesteps and at the end,
  each time after a checkpoint of that step; keeps the rows of eval.csv, the best mean return (saving
  ``best_model.zip``), when the agent first beat the best baseline by 10%; writes eval.csv and progress.json, logs
  ``eval/*`` scalars (tensorboard);
- :class:`PeriodicCheckpoint`: atomic checkpoints (with DQN's replay buffer when asked) every ``freq`` timesteps;
- :class:`WallClockLimit`: stops training after ``max_wall_s`` seconds;
- :class:`ProgressBar`: a tqdm bar over timesteps (or seconds under a wall-time budget) showing the last
  evaluation.

Periodic callbacks fire on the grid of multiples of their period (64, 128, ... for 64), so a resumed run keeps
the grid of the run it continues.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, EventCallback

from bundlerl.experiment.run_dir import RunDir

__all__ = ["TimestepGrid", "PeriodicEvaluation", "PeriodicCheckpoint", "WallClockLimit", "ProgressBar"]


class TimestepGrid(EventCallback):
    """Fires :meth:`_on_event` at the first step at or past each multiple of ``freq`` timesteps.

    :param freq: period in timesteps (>= 1).
    :param callback: an optional child callback run at each event (SB3's ``EventCallback`` convention).
    """

    def __init__(self, freq: int, callback: BaseCallback | None = None, verbose: int = 0):
        super().__init__(callback, verbose=verbose)
        if freq < 1:
            raise ValueError(f"freq={freq}; it must be >= 1")  # a programming error: configs validate theirs
        self.freq = int(freq)
        self.next_event = self.freq

    def _next_after(self, t: int) -> int:
        return (t // self.freq + 1) * self.freq

    def _on_training_start(self) -> None:
        self.next_event = self._next_after(self.num_timesteps)

    def _on_step(self) -> bool:
        if self.num_timesteps < self.next_event:
            return True
        self.next_event = self._next_after(self.num_timesteps)
        return self._on_event()


class PeriodicCheckpoint(TimestepGrid):
    """``run_dir.save_checkpoint`` every ``freq`` timesteps (the replay buffer too with ``save_replay``), or
    ``save(model)`` when given (a training segment's, which skips a state it saved already)."""

    def __init__(self, run_dir: RunDir, freq: int, save_replay: bool = False, save: Callable | None = None,
                 verbose: int = 0):
        super().__init__(freq, verbose=verbose)
        self.run_dir = run_dir
        self.save_replay = save_replay
        self.save = save

    def _on_event(self) -> bool:
        if self.save is not None:
            self.save(self.model)
        else:
            self.run_dir.save_checkpoint(self.model, self.num_timesteps, save_replay=self.save_replay)
        return super()._on_event()


class PeriodicEvaluation(TimestepGrid):
    """Evaluates the model every ``freq`` timesteps and when training ends (unless that step was just evaluated).

    Each evaluation first saves a checkpoint of the step (``checkpoint(model)``, when given), then appends a row to
    :attr:`rows` (keys ``bundlerl.experiment.run_dir.EVAL_COLUMNS``; the training wall time counts the earlier
    invocations of a resumed run), saves ``best_model.zip`` when the mean return beats :attr:`best`, records
    :attr:`first_beat_s` / :attr:`first_beat_t` when it first reaches ``beat_target``, and rewrites eval.csv and
    progress.json. Checkpoint first, row second: a kill between the two leaves a checkpoint whose row is missing,
    which :meth:`continue_from` evaluates when the run resumes, so eval.csv never keeps a hole. The state starts
    from the run directory's files, so a resumed run continues its curve.

    :param evaluate: ``f(model) -> EvalResult`` on fixed episodes (the same every time).
    :param run_dir: the run directory.
    :param freq: timesteps between evaluations.
    :param beat_target: the mean return that counts as beating the best baseline by 10% (None: no target).
    :param checkpoint: ``f(model)`` saving a checkpoint of the model's current step (None: none).
    :param end: the run's last timestep (its final evaluation is due there too), None when unknown.
    """

    def __init__(self, evaluate: Callable, run_dir: RunDir, freq: int, beat_target: float | None = None,
                 checkpoint: Callable | None = None, end: int | None = None, verbose: int = 0):
        super().__init__(freq, verbose=verbose)
        self.evaluate_model = evaluate
        self.run_dir = run_dir
        self.beat_target = beat_target
        self.checkpoint = checkpoint
        self.end = end
        prog = run_dir.read_json("progress.json", default={})
        self.rows: list[dict] = run_dir.eval_rows()
        # the rows are the record (progress.json is written after them, so a kill between may leave it behind)
        self.best = max([float(prog.get("best", -np.inf))] + [r["mean_return"] for r in self.rows])
        self.first_beat_s: float | None = prog.get("first_beat_s")
        self.first_beat_t: int | None = prog.get("first_beat_t")
        if self.first_beat_t is None and beat_target is not None:
            hit = next((r for r in self.rows if r["mean_return"] >= beat_target), None)
            if hit is not None:
                self.first_beat_s, self.first_beat_t = hit["wall_s"], hit["timesteps"]
        logged, last_row = float(prog.get("train_s", 0.0)), (self.rows[-1]["wall_s"] if self.rows else 0.0)
        self.prev_train_s = logged if logged >= last_row - 0.005 else last_row  # rows hold wall_s to 0.01 s
        self.t0 = time.perf_counter()

    @property
    def last_eval(self) -> float | None:
        """Mean return of the last evaluation (None before the first)."""
        return self.rows[-1]["mean_return"] if self.rows else None

    def continue_from(self, model) -> int:
        """Bring the rows in line with ``model`` (a resumed run's checkpoint): drop rows after its timesteps (a
        fallback to an older checkpoint redoes that training), then evaluate it when its step is an evaluation
        whose row is missing (killed between checkpoint and row). Returns the number of rows dropped."""
        t = int(model.num_timesteps)
        kept = [r for r in self.rows if r["timesteps"] <= t]
        dropped = len(self.rows) - len(kept)
        if dropped:
            self.rows = kept
            self.run_dir.write_eval_rows(self.rows)
        last = self.rows[-1]["timesteps"] if self.rows else 0
        due = t // self.freq > last // self.freq or (self.end is not None and t >= self.end)
        if t > last and due:
            if getattr(self, "model", None) is not model:
                self.init_callback(model)
            self.num_timesteps = t
            self.t0 = time.perf_counter()
            self.evaluate_now()
        return dropped

    def _on_training_start(self) -> None:
        super()._on_training_start()
        self.t0 = time.perf_counter()

    def _on_event(self) -> bool:
        self.evaluate_now()
        return super()._on_event()

    def _on_training_end(self) -> None:
        if not self.rows or self.rows[-1]["timesteps"] < self.num_timesteps:
            self.evaluate_now()

    def evaluate_now(self) -> dict:
        """One evaluation (see the class docstring); returns its row."""
        if self.checkpoint is not None:
            self.checkpoint(self.model)
        res = self.evaluate_model(self.model)
        summary = res.summary()
        est = summary["return"]
        train_s = self.prev_train_s + (time.perf_counter() - self.t0)
        ep_buf = getattr(self.model, "ep_info_buffer", None) or []
        train_ret = float(np.mean([e["r"] for e in ep_buf])) if len(ep_buf) else float("nan")
        row = {"timesteps": int(self.num_timesteps), "wall_s": round(train_s, 2), "mean_return": est.value,
               "ci_low": est.low, "ci_high": est.high, "train_return": train_ret}
        self.rows.append(row)
        self.logger.record("eval/mean_return", est.value)
        self.logger.record("eval/ci_half_width", est.half_width)
        self.logger.record("eval/click_rate", summary["click_rate"].value)
        if est.value > self.best:
            self.best = est.value
            self.run_dir.save_model(self.model, "best_model.zip")
        if self.first_beat_s is None and self.beat_target is not None and est.value >= self.beat_target:
            self.first_beat_s, self.first_beat_t = train_s, int(self.num_timesteps)
        self.run_dir.write_eval_rows(self.rows)
        self.run_dir.write_json("progress.json", {"best": self.best, "first_beat_s": self.first_beat_s,
                                                  "first_beat_t": self.first_beat_t, "train_s": train_s})
        return row


class WallClockLimit(BaseCallback):
    """Stops training once ``max_wall_s`` seconds have passed since training started (0: never)."""

    def __init__(self, max_wall_s: float, verbose: int = 0):
        super().__init__(verbose)
        self.max_wall_s = float(max_wall_s)
        self.t0 = time.perf_counter()

    def _on_training_start(self) -> None:
        self.t0 = time.perf_counter()

    def _on_step(self) -> bool:
        return not self.max_wall_s or time.perf_counter() - self.t0 < self.max_wall_s


class ProgressBar(BaseCallback):
    """A tqdm bar over timesteps up to ``total``, or over seconds when a wall-time budget ends the run first
    (``max_wall_s`` with an effectively unbounded ``total``: "train for N minutes" runs). Shows the last and the
    best mean return of ``evaluation`` when given.

    :param total: the run's total timesteps. :param desc: the bar's label.
    """

    def __init__(self, total: int, desc: str = "train", max_wall_s: float = 0.0,
                 evaluation: PeriodicEvaluation | None = None, verbose: int = 0):
        super().__init__(verbose)
        self.total, self.desc, self.max_wall_s, self.evaluation = int(total), desc, float(max_wall_s), evaluation
        self.bar = None
        self.by_time = False
        self.t0 = time.perf_counter()

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        self.t0 = time.perf_counter()
        self.by_time = bool(self.max_wall_s) and self.total - self.num_timesteps > 10**8
        if self.by_time:
            self.bar = tqdm(total=int(self.max_wall_s), desc=self.desc, unit="s", dynamic_ncols=True)
        else:
            self.bar = tqdm(total=self.total, initial=self.num_timesteps, desc=self.desc, unit="step",
                            dynamic_ncols=True)

    def _position(self) -> int:
        if self.by_time:
            return min(int(time.perf_counter() - self.t0), int(self.max_wall_s))
        return min(self.num_timesteps, self.total)

    def _on_step(self) -> bool:
        self.bar.n = self._position()
        post = {"steps": self.num_timesteps} if self.by_time else {}
        ev = self.evaluation
        if ev is not None and ev.last_eval is not None:
            post.update(eval_return=f"{ev.last_eval:.3f}", best=f"{ev.best:.3f}")
        if post:
            self.bar.set_postfix(post, refresh=False)
        self.bar.update(0)
        return True

    def _on_training_end(self) -> None:
        self.bar.n = self._position()
        self.bar.close()
