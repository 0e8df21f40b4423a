"""A trained SB3 policy as an ONNX graph, and :class:`OnnxPolicy`, the policy protocol over that graph.

Export (:func:`export_onnx`). A small ``nn.Module`` wraps the SB3 policy and maps the five observation arrays
(``bundlerl.env.observation.OBS_KEYS``, each with a leading batch axis N) to one (N, K) float32 output:

- PPO / MaskablePPO: the **logits** of the policy's categorical distribution (features extractor -> actor
  latent -> ``action_net``; the candidate-head policies already give masked candidates logit -1e8);
- DQN: the **Q-values** of ``q_net`` (masked candidates -1e9, :class:`bundlerl.agents.networks.MaskedQNetwork`).

torch 2.13's default exporter (``dynamo=True``) needs the ``onnxscript`` package; the graph here is a plain
feed-forward network, so the TorchScript tracer (``dynamo=False``, opset 17, dynamic batch axis) exports it with
``onnx`` alone. Its deprecation warning is silenced on purpose.

Loading (:class:`OnnxPolicy`) needs only ``onnxruntime``, never torch or SB3, and turns the output into
probabilities exactly as :class:`bundlerl.agents.sb3.SB3Policy` does: PPO -> softmax restricted to the valid
candidates (uniform over them when the mass underflows; uniform over all when none is valid); DQN -> one-hot on
the greedy valid candidate, or epsilon-greedy over the valid ones.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from bundlerl.agents.policy import (
    Observation,
    Policy,
    PolicyError,
    batch_size_of,
    greedy_probabilities,
    masked_softmax,
)
from bundlerl.env.observation import MASK_KEY, OBS_KEYS

__all__ = ["OUTPUT_KINDS", "export_onnx", "OnnxPolicy"]

OUTPUT_KINDS = ("logits", "q")
"""What the graph's one output holds: PPO logits or DQN Q-values."""


def _wrapper(model):
    """(nn.Module mapping the OBS_KEYS tensors to the (N, K) output, output kind) for an SB3 model."""
    import torch as th
    from stable_baselines3 import DQN

    pol = model.policy
    is_dqn = isinstance(model, DQN)

    class _Graph(th.nn.Module):
        def __init__(self):
            super().__init__()
            self.pol = pol

        def forward(self, *arrays):
            obs = dict(zip(OBS_KEYS, arrays))
            if is_dqn:
                return self.pol.q_net(obs)
            feats = self.pol.extract_features(obs, self.pol.pi_features_extractor)
            logits = self.pol.action_net(self.pol.mlp_extractor.forward_actor(feats))
            return logits

    return _Graph().eval(), ("q" if is_dqn else "logits")


def export_onnx(model, path: str | os.PathLike) -> str:
    """Write the SB3 ``model``'s policy (PPO, MaskablePPO or DQN) to ``path`` as ONNX; returns the output kind
    (``"logits"`` or ``"q"``, :data:`OUTPUT_KINDS`).

    Inputs are named as ``OBS_KEYS`` (float32, shapes (N, ...) of the model's observation space, N dynamic); the
    one output is ``"scores"`` (N, K) float32. The file is written atomically.
    """
    import torch as th

    from bundlerl.utils.atomic import atomic_write

    graph, kind = _wrapper(model)
    space = model.observation_space
    example = tuple(th.zeros((2, *space[k].shape), dtype=th.float32) for k in OBS_KEYS)
    with atomic_write(Path(path)) as tmp, warnings.catch_warnings(), th.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter: see the module docstring
        axes = {k: {0: "n"} for k in (*OBS_KEYS, "scores")}
        th.onnx.export(graph, example, str(tmp), input_names=list(OBS_KEYS), output_names=["scores"],
                       dynamic_axes=axes, dynamo=False, opset_version=17)
    return kind


class OnnxPolicy(Policy):
    """An exported policy (:func:`export_onnx`) run with onnxruntime, as a :class:`Policy`.

    :param path: the ``.onnx`` file. :param kind: its output kind (:data:`OUTPUT_KINDS`).
    :param name: label in tables. :param epsilon: DQN only: epsilon-greedy exploration in [0, 1].
    :param threads: onnxruntime intra-op threads (1: a serving worker answers one request at a time).
    :raises PolicyError: a bad kind or epsilon, or a file onnxruntime cannot read.
    """

    def __init__(self, path: str | os.PathLike, kind: str, name: str = "onnx", epsilon: float = 0.0,
                 threads: int = 1):
        import onnxruntime as ort

        if kind not in OUTPUT_KINDS:
            raise PolicyError(f"ONNX policy output kind {kind!r}; use one of {OUTPUT_KINDS}")
        if not 0.0 <= epsilon <= 1.0 or (epsilon and kind != "q"):
            raise PolicyError(f"epsilon={epsilon}: it must be in [0, 1] and applies to DQN (kind 'q') only")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = int(threads)
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own classes for unreadable graphs
            raise PolicyError(f"{path}: onnxruntime cannot load this policy ({type(exc).__name__}: {exc}); "
                              "export it again with 'bundlerl export'") from None
        have = [i.name for i in self.session.get_inputs()]
        if have != list(OBS_KEYS):
            raise PolicyError(f"{path}: graph inputs {have}; an exported bundlerl policy has {list(OBS_KEYS)}")
        self.kind, self.name, self.epsilon = kind, name, float(epsilon)

    def scores(self, obs: Observation) -> np.ndarray:
        """(N, K) float32 raw output of the graph (logits or Q-values)."""
        batch_size_of(obs)
        feed = {k: np.ascontiguousarray(obs[k], dtype=np.float32) for k in OBS_KEYS}
        return self.session.run(None, feed)[0]

    def action_probabilities(self, obs: Observation) -> np.ndarray:
        out = self.scores(obs)
        mask = np.asarray(obs[MASK_KEY]) > 0
        if self.kind == "logits":
            return masked_softmax(out, mask)
        probs = greedy_probabilities(out.astype(np.float64), mask)
        if self.epsilon > 0:
            valid = np.where(mask.any(axis=1, keepdims=True), mask, True).astype(np.float64)
            probs = (1 - self.epsilon) * probs + self.epsilon * valid / valid.sum(axis=1, keepdims=True)
        return probs
