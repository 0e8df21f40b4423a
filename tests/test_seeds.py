"""Evaluation never sees training episodes: every env stream is purpose-tagged (bundlerl.evaluation.seeds), so the
rows of training (each segment of a resumed run), periodic evaluation, final evaluation, ``bundlerl evaluate`` and
quickstart are disjoint by construction. The integration test runs every command on the real small world and
records the SeedSequence of every env row and the shopper key of every episode actually used."""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
import pytest

from bundlerl.evaluation.seeds import Purpose, action_rng, env_stream, stream_label


def _row_ids(stream, n):
    from bundlerl.env.vec_env import BundleRecVecEnv  # noqa: F401 - the rule is the env's: recorded below

    return [(stream.entropy, (*stream.spawn_key, i)) for i in range(n)]


def test_streams_of_different_purposes_or_segments_never_share_a_row():
    ids, states = set(), set()
    for purpose, seed, segment in itertools.product(Purpose, (0, 1, 7, 2**40), (0, 64, 4096)):
        stream = env_stream(purpose, seed, segment)
        for i, child in enumerate(np.random.SeedSequence(stream.entropy, spawn_key=(*stream.spawn_key, i))
                                  for i in range(16)):
            ids.add((child.entropy, child.spawn_key))
            states.add(tuple(child.generate_state(4)))
    assert len(ids) == len(states) == len(Purpose) * 4 * 3 * 16


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_a_stream_needs_a_non_negative_integer_seed(bad):
    with pytest.raises(ValueError, match="seed"):
        env_stream(Purpose.TRAIN, bad)


def test_the_env_seeds_row_i_with_the_streams_child_i():
    from bundlerl.env.vec_env import BundleRecVecEnv

    stream = env_stream(Purpose.EVALUATE, 5)
    venv = BundleRecVecEnv("small", num_envs=3, seed=stream)
    got = [(g.bit_generator.seed_seq.entropy, g.bit_generator.seed_seq.spawn_key) for g in venv.core.row_rngs]
    assert got == _row_ids(stream, 3)
    plain = BundleRecVecEnv("small", num_envs=2, seed=5)  # integer seeds keep their meaning: row i = seed + i
    assert [g.bit_generator.seed_seq.entropy for g in plain.core.row_rngs] == [5, 6]
    assert stream_label(stream) == "evaluate stream, seed 5" and stream_label(3) == "env seed 3"
    assert action_rng(stream).random() != np.random.default_rng(
        np.random.SeedSequence(5, spawn_key=(*stream.spawn_key, 0))).random()


class _Recorder:
    """Per label ("<command>:<kind>"): the (entropy, spawn_key) of the generator of every env row an episode started
    from, and every episode's shopper key. The kind comes from the call site: envs made by training's _make_venv are ``train``; those of
    evaluate_runs are ``evaluate``; training's own evaluations are ``periodic`` until learn returns, ``final``
    after."""

    def __init__(self, monkeypatch):
        import bundlerl.agents.sb3 as sb3
        import bundlerl.experiment.evaluate as ev
        import bundlerl.experiment.training as tr
        from bundlerl.env.session import SessionBatch

        self.command, self.kind, self.learned = "", "other", False
        self.rows: dict[str, set] = defaultdict(set)
        self.keys: dict[str, set] = defaultdict(set)
        rec = self
        seed_rows, reset_rows = SessionBatch.seed_rows, SessionBatch._reset_rows

        def on_seed_rows(core, rows, rngs):  # the label of the call site that made the env (its first seeding)
            core.__dict__.setdefault("_label", f"{rec.command}:{rec.kind}")
            return seed_rows(core, rows, rngs)

        def on_reset_rows(core, rows):  # the generators and shopper keys episodes actually start from
            reset_rows(core, rows)
            idx = np.arange(core.n) if rows is None else np.asarray(rows)
            seqs = [core.row_rngs[r].bit_generator.seed_seq for r in idx.tolist()]
            rec.rows[core._label] |= {(q.entropy, q.spawn_key) for q in seqs}
            rec.keys[core._label] |= set(core.keys[idx].tolist())

        def during(kind, f):
            def wrapped(*a, **k):
                prev, rec.kind = rec.kind, kind() if callable(kind) else kind
                try:
                    return f(*a, **k)
                finally:
                    rec.kind = prev

            return wrapped

        monkeypatch.setattr(SessionBatch, "seed_rows", on_seed_rows)
        monkeypatch.setattr(SessionBatch, "_reset_rows", on_reset_rows)
        monkeypatch.setattr(tr, "_make_venv", during("train", tr._make_venv))
        monkeypatch.setattr(tr, "_eval_policy", during(lambda: "final" if rec.learned else "periodic", tr._eval_policy))
        monkeypatch.setattr(ev, "evaluate_runs", during("evaluate", ev.evaluate_runs))
        for algo in ("ppo", "dqn"):
            cls = sb3.algo_class(algo)

            def learn(self, *a, _real=cls.learn, **k):
                out = _real(self, *a, **k)
                rec.learned = True
                return out

            monkeypatch.setattr(cls, "learn", learn)

    def run(self, command: str, argv: list[str]) -> None:
        from bundlerl.scripts import cli

        self.command, self.learned = command, False
        assert cli.main(argv) == 0


def test_no_command_replays_another_purposes_shoppers(monkeypatch, tmp_path):
    rec = _Recorder(monkeypatch)
    tiny = ["--preset", "small", "--num-envs", "4", "--set", "n_steps=8", "--set", "batch_size=16", "--eval-freq",
            "32", "--eval-episodes", "8", "--final-episodes", "8", "--no-progress"]
    rec.run("train", ["train", *tiny, "--seed", "0", "--timesteps", "64", "--out", str(tmp_path / "runs")])
    (run,) = (tmp_path / "runs").iterdir()
    rec.run("resume", ["train", "--resume", str(run), "--timesteps", "128", "--no-progress"])
    rec.run("evaluate", ["evaluate", str(run), "--baselines", "random,complement-greedy", "--episodes", "8",
                         "--out", str(tmp_path / "ev"), "--no-progress"])  # --seed 0: the default, as train's
    import bundlerl.evaluation.tuning as tuning

    monkeypatch.setattr(tuning, "cache_root", lambda: tmp_path / "cache")  # tuned-linear is fitted, not read
    rec.run("quickstart", ["quickstart", "--preset", "small", "--timesteps", "64", "--episodes", "8",
                           "--tuned-budget", "1x2x4", "--out", str(tmp_path / "qs")])
    labels = {"train:train", "train:periodic", "train:final", "resume:train", "resume:periodic", "resume:final",
              "evaluate:evaluate", "quickstart:train", "quickstart:periodic", "quickstart:evaluate",
              "quickstart:other"}  # other: quickstart's fit of tuned-linear
    assert labels <= set(rec.rows) and all(rec.keys[label] for label in labels), (set(rec.rows), dict(rec.keys))
    kind = lambda label: label.split(":")[1]  # noqa: E731
    for a, b in itertools.combinations(sorted(labels), 2):
        # the same kind shares its stream by design (every run's periodic evaluations use the same episodes; two
        # runs of seed 0 train on the same shoppers) except a run's two training segments
        if kind(a) == kind(b) and {a, b} != {"train:train", "resume:train"}:
            continue
        assert not rec.rows[a] & rec.rows[b], (a, b, sorted(rec.rows[a] & rec.rows[b])[:3])
        assert not rec.keys[a] & rec.keys[b], (a, b, len(rec.keys[a] & rec.keys[b]))
    # what the streams are: the purpose tag first, a training segment by its first timestep
    spawn = {label: {key[:2] for _, key in rec.rows[label]} for label in labels}
    assert spawn["train:train"] == {(Purpose.TRAIN, 0)} and spawn["resume:train"] == {(Purpose.TRAIN, 64)}
    assert spawn["train:periodic"] == spawn["resume:periodic"] == {(Purpose.PERIODIC_EVAL, 0)}
    assert spawn["train:final"] == {(Purpose.FINAL_EVAL, 0)} and spawn["evaluate:evaluate"] == {(Purpose.EVALUATE, 0)}
    assert spawn["quickstart:other"] == {(Purpose.TUNE, 0)}  # the fit plays its own training streams only
