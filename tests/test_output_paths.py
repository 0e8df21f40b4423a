"""Output folders are checked before any work: every kind of unusable path (a file in the way at any depth, an empty
path, a folder that cannot be written: a read-only or virtual filesystem) is refused at once by the library
(``train``, ``evaluate_runs``) and by every ``--out`` flag; a usable one (existing, or missing at any depth under a
writable folder) passes and nothing is created by the check."""

from __future__ import annotations

from pathlib import Path

import pytest

from bundlerl.utils.paths import OutputPathError, check_output_folder

UNWRITABLE = [p for p in ("/proc/bundlerl-h15/out", "/sys/bundlerl-h15") if Path(p).parent.is_dir()]


def _bad(tmp: Path) -> list[str]:
    f = tmp / "a-file"
    f.write_text("x")
    return [str(f), str(f / "sub"), str(f / "sub" / "deeper"), "", "   ", *UNWRITABLE]


def _good(tmp: Path) -> list[str]:
    return [str(tmp), str(tmp / "new"), str(tmp / "new" / "deep" / "er")]


def test_every_kind_of_bad_output_folder_is_refused_naming_it(tmp_path):
    for path in _bad(tmp_path):
        with pytest.raises(OutputPathError) as err:
            check_output_folder(path, "--out")
        assert str(err.value).startswith("--out") and (path.strip() == "" or repr(path) in str(err.value))


def test_good_output_folders_pass_and_the_check_creates_nothing(tmp_path):
    before = sorted(tmp_path.rglob("*"))
    for path in _good(tmp_path):
        assert check_output_folder(path, "--out") == Path(path)
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("kind", ["train", "evaluate_runs"])
def test_the_library_refuses_a_bad_out_before_any_work(tmp_path, monkeypatch, kind):
    import bundlerl.env
    import bundlerl.env.world
    from bundlerl.experiment import TrainConfig, evaluate_runs, train

    def never(*a, **k):
        raise AssertionError("work started before the output folder was checked")

    for mod in (bundlerl.env, bundlerl.env.world):
        monkeypatch.setattr(mod, "build_world", never)
    for path in _bad(tmp_path):
        with pytest.raises(OutputPathError):
            if kind == "train":
                train(TrainConfig(preset="small", timesteps=1), out=path, log=lambda m: None)
            else:
                evaluate_runs([], baselines=["random"], preset="small", episodes=1, out=path, log=lambda m: None)
