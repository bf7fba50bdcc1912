"""Training the denoisers: seeded, and a resumed run equals an uninterrupted one bit for bit (CPU,
one thread: the same operations in the same order; the checkpoint holds model, EMA, optimiser,
step and both random states)."""

import pytest
import torch

from landscape.denoisers.train import PatchSampler, TrainConfig, train

TINY = dict(channels=4, steps=6, batch=2, patch=16, checkpoint_every=3, threads=1)


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


class _Interrupt(Exception):
    pass


def test_resumed_training_equals_an_uninterrupted_run_and_the_seed_fixes_it(tmp_path):
    a = train(TrainConfig(**TINY), tmp_path / "a.pt", progress=False)
    again = train(TrainConfig(**TINY), tmp_path / "again.pt", progress=False)
    other = train(TrainConfig(**TINY, seed=1), tmp_path / "other.pt", progress=False)

    real, calls = PatchSampler(16), {"n": 0}

    def dies_at_step_5(batch, rng):            # the checkpoint of step 3 is on disk by then
        calls["n"] += 1
        if calls["n"] == 5:
            raise _Interrupt
        return real(batch, rng)

    with pytest.raises(_Interrupt):
        train(TrainConfig(**TINY), tmp_path / "b.pt", sampler=dies_at_step_5, progress=False)
    assert (tmp_path / "b.ckpt").exists() and not (tmp_path / "b.pt").exists()
    b = train(TrainConfig(**TINY), tmp_path / "b.pt", progress=False)      # resumes from step 3

    wa, wb, w2, wo = _weights(a), _weights(b), _weights(again), _weights(other)
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
        assert torch.equal(wa[k], w2[k]), k
    assert any(not torch.equal(wa[k], wo[k]) for k in wa)


def test_resume_refuses_a_checkpoint_of_other_options(tmp_path):
    from landscape._checks import InputError
    train(TrainConfig(**{**TINY, "steps": 3}), tmp_path / "w.pt", progress=False)
    with pytest.raises(InputError, match="out"):
        train(TrainConfig(**{**TINY, "steps": 3, "lr": 2e-3}), tmp_path / "w.pt", progress=False)
