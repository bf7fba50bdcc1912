"""Training the denoisers: seeded, and a resumed run equals an uninterrupted one bit for bit (CPU,
one thread: the same operations in the same order; the checkpoint holds model, EMA, optimiser,
step and both random states)."""

import numpy as np
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


@pytest.mark.parametrize("which", ["denoiser", "unrolled-free", "unrolled-motion", "unrolled-free-colour"])
def test_training_allocates_nothing_off_its_device_and_gives_the_same_weights(tmp_path, which):
    """A run with torch's default device set to ``meta`` (training on the CPU) writes the same weights bit for
    bit: every tensor the loop makes (the model's initialisation, batches, kernels, noise, EMA, optimiser
    state) is placed on the training device or drawn on the host, the error a GPU run would otherwise meet."""
    from landscape.estimators.train_unrolled import UnrolledTrainConfig, train_unrolled

    def run(name):
        if which == "denoiser":
            return train(TrainConfig(**{**TINY, "steps": 3}), tmp_path / name, progress=False)
        fam = dict(family="free", kernel_size=5, kernel_steps=2, kernel_sharpen=4) if which.startswith("unrolled-free") else \
            dict(family="motion", theta_max=4.0, kernel_size=5)
        fam["color"] = which.endswith("colour")
        cfg = UnrolledTrainConfig(**fam, iterations=2, channels=4, init="none", patch=16, batch=2, steps=3,
                                  checkpoint_every=3, threads=1)
        return train_unrolled(cfg, tmp_path / name, progress=False)

    ref = _weights(run("cpu.pt"))
    torch.set_default_device("meta")
    try:
        got = _weights(run("meta.pt"))
    finally:
        torch.set_default_device(None)
    assert ref.keys() == got.keys()
    for k in ref:
        assert torch.equal(ref[k], got[k]), k


def test_a_checkpoint_resumes_under_another_device_option(tmp_path):
    """``device`` is where a run trains, not what it learns: a checkpoint written under one ``device`` value
    resumes under another (here ``cpu`` and the default device ``None``'s spelling ``cpu:0``)."""
    from landscape.denoisers.train import RESUMABLE_ACROSS
    assert "device" in RESUMABLE_ACROSS
    real, calls = PatchSampler(16), {"n": 0}

    def dies_at_step_5(batch, rng):
        calls["n"] += 1
        if calls["n"] == 5:
            raise _Interrupt
        return real(batch, rng)

    with pytest.raises(_Interrupt):
        train(TrainConfig(**TINY), tmp_path / "b.pt", sampler=dies_at_step_5, progress=False)
    b = train(TrainConfig(**TINY, device="cpu:0"), tmp_path / "b.pt", progress=False)
    a = train(TrainConfig(**TINY), tmp_path / "a.pt", progress=False)
    wa, wb = _weights(a), _weights(b)
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_a_colour_unrolled_model_starts_only_from_a_colour_denoiser(tmp_path):
    """``--color`` builds a 3-channel UNet: the gray denoiser's weights do not fit it; colour GMM data
    (``--data gmm``, (3, 16, 16) draws) train it, with a 16-pixel patch only; each refusal names its option."""
    from landscape._checks import InputError
    from landscape.estimators.train_unrolled import UnrolledTrainConfig, train_unrolled
    cfg = UnrolledTrainConfig(family="gaussian", color=True, init="denoiser-gray", iterations=1, patch=16,
                              batch=1, steps=1, threads=1)
    with pytest.raises(InputError, match=r"init: expected a denoiser on 3-channel images"):
        train_unrolled(cfg, tmp_path / "w.pt", progress=False)
    assert not (tmp_path / "w.pt").exists()
    with pytest.raises(InputError, match="^patch: "):
        UnrolledTrainConfig(family="gaussian", color=True, data="gmm", patch=32)
    gmm = UnrolledTrainConfig(family="gaussian", color=True, data="gmm", patch=16, init="unrolled-gaussian-color",
                              batch=2, steps=1, threads=1)
    draws = lambda n, rng: torch.as_tensor(rng.random((n, 3, 16, 16)), dtype=torch.float32)
    meta = torch.load(train_unrolled(gmm, tmp_path / "g.pt", sampler=draws, progress=False), weights_only=True)["meta"]
    assert meta["training_images"] == "fit_natural_gmm((3, 16, 16),10,10000)"


def test_the_kernel_sharpening_cnn_starts_as_the_identity_and_learns_from_the_kernel_loss():
    """A free kernel branch with ``kernel_sharpen`` loaded from a model without it (the fine-tuning path of
    ``--init``) gives that model's images and kernels exactly; the kernel's squared error has a non-zero gradient on
    the CNN's zero-initialised last layer, so training moves it; a parametric family refuses the option by name."""
    from landscape._checks import InputError
    from landscape.estimators.train_unrolled import UnrolledTrainConfig
    from landscape.estimators.unrolled import UnrolledBlind
    torch.manual_seed(0)
    fam = {"name": "free", "size": 5, "lo": [0.0], "hi": [3.0]}
    plain = UnrolledBlind(fam, iterations=2, channels=4).eval()
    sharp = UnrolledBlind({**fam, "kernel_sharpen": 4}, iterations=2, channels=4)
    missing, unexpected = sharp.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("kernel_branch.sharpen.") for k in missing)
    y = torch.rand(2, 16, 16)
    with torch.no_grad():
        a, b = plain(y, 0.02), sharp.eval()(y, 0.02)
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["kernel"], b["kernel"])
    h = torch.zeros(2, 5, 5)
    h[:, 2, 1:4] = 1 / 3
    ((sharp(y, 0.02)["kernel"] - h) ** 2).sum().backward()
    assert float(sharp.kernel_branch.sharpen[-1].weight.grad.abs().max()) > 0
    with pytest.raises(InputError, match="^kernel_sharpen: "):
        UnrolledTrainConfig(family="gaussian", kernel_sharpen=4)


def test_the_smoothed_kernel_loss_is_the_gaussian_filtered_error_and_sees_a_motion_kernel_at_the_wrong_angle():
    """``kernel_loss(h, h*, s)``: the plain squared error plus, at widths s and s/2, the error filtered by
    ``scipy.ndimage.gaussian_filter`` (zero padding, truncated at 3 widths) divided by the filter's squared norm
    (to 1e-12); 0 gives the plain error. For a length-7 motion kernel at 30 degrees, the plain error is flat from 70
    to 150 degrees off (within 0.12 to 0.16), so no gradient turns an estimate there back; the smoothed one rises from
    0.11 at 50 degrees to 0.41 at 120 degrees (measured), so it does."""
    import numpy as np
    from scipy.ndimage import gaussian_filter

    from landscape import kernels
    from landscape.estimators.train_unrolled import kernel_loss
    g = np.random.default_rng(0)
    h, ht = (torch.as_tensor(g.random((3, 15, 15))) for _ in range(2))
    d = (h - ht).numpy()
    want = (d ** 2).sum((-2, -1))
    for w in (3.0, 1.5):
        delta = np.zeros((41, 41))                     # the whole filter: 2 * 9 + 1 < 41
        delta[20, 20] = 1
        norm2 = (gaussian_filter(delta, w, mode="constant", truncate=3.0) ** 2).sum()
        want = want + np.array([(gaussian_filter(di, w, mode="constant", truncate=3.0) ** 2).sum() for di in d]) / norm2
    assert float(kernel_loss(h, ht, 3.0)) == pytest.approx(want.mean(), rel=1e-12)
    assert float(kernel_loss(h, ht)) == pytest.approx((d ** 2).sum((-2, -1)).mean(), rel=1e-12)
    fam = kernels.get("motion", 15)
    at = lambda a: fam(torch.tensor([[7.0, a]], dtype=torch.float64))        # noqa: E731
    plain = [float(kernel_loss(at(a), at(30.0))) for a in (100.0, 140.0, 180.0)]
    smooth = [float(kernel_loss(at(a), at(30.0), 3.0)) for a in (60.0, 80.0, 150.0)]
    assert max(plain) - min(plain) < 0.05
    assert smooth[0] < smooth[1] < smooth[2]


def test_reset_kernel_branch_keeps_the_inits_unet_and_levels_and_starts_the_branch_as_a_fresh_seeded_model(tmp_path):
    """``--init FILE --reset-kernel-branch`` (the repair of a kernel branch whose features stopped depending on its
    input): the UNet and the levels are the file's, bit for bit; the kernel branch is that of a fresh model built with
    the same seed, not the file's; without the flag the branch is the file's; with a denoiser init the flag is refused
    by name."""
    from landscape._checks import InputError
    from landscape.estimators.train_unrolled import UnrolledTrainConfig, initial_model
    from landscape.estimators.unrolled import UnrolledBlind
    base = dict(family="motion", theta_max=5.0, kernel_size=7, iterations=2, channels=4, patch=16, seed=3)
    torch.manual_seed(11)
    src = UnrolledBlind(UnrolledTrainConfig(**base).family_spec(), 2, 4)
    torch.nn.init.normal_(src.log_s)
    torch.save({"config": dict(src.config), "state_dict": src.state_dict()}, tmp_path / "src.pt")
    fresh = initial_model(UnrolledTrainConfig(**base, init="none"))
    reset = initial_model(UnrolledTrainConfig(**base, init=str(tmp_path / "src.pt"), reset_kernel_branch=True))
    kept = initial_model(UnrolledTrainConfig(**base, init=str(tmp_path / "src.pt")))
    for k, v in reset.state_dict().items():
        want = (fresh if k.startswith("kernel_branch.") else src).state_dict()[k]
        assert torch.equal(v, want), k
    assert all(torch.equal(v, src.state_dict()[k]) for k, v in kept.state_dict().items())
    assert not torch.equal(reset.kernel_branch.head[2].weight, src.kernel_branch.head[2].weight)
    with pytest.raises(InputError, match="^reset_kernel_branch: "):
        UnrolledTrainConfig(**base, init="denoiser-gray", reset_kernel_branch=True)


def test_draw_gives_the_kernels_and_their_parameters_and_free_kernels_refuse_the_parametric_options():
    """``draw`` gives the kernels and the parameters that make them; free kernels refuse
    ``theta_weight`` and ``branch_pretrain`` by name."""
    import numpy as np

    from landscape._checks import InputError
    from landscape.estimators.train_unrolled import RECIPES, UnrolledTrainConfig, draw
    from landscape import kernels
    cfg = UnrolledTrainConfig(**RECIPES["unrolled-motion"])
    h, t = draw(cfg, 3, np.random.default_rng(0))
    torch.testing.assert_close(h, kernels.get("motion", 15)(t.double()).float())
    for name, value in (("theta_weight", 1.0), ("branch_pretrain", 10), ("marginal", True)):
        with pytest.raises(InputError, match=f"^{name}: "):
            UnrolledTrainConfig(family="free", **{name: value})
    with pytest.raises(InputError, match="^theta_weight: "):          # the marginal step's theta has no gradient
        UnrolledTrainConfig(**RECIPES["unrolled-motion"], marginal=True, theta_weight=1.0)


def test_a_marginal_kernel_step_starts_fresh_on_unrolled_weights_without_one(tmp_path):
    """``--init FILE --marginal``: every weight of the file is kept, bit for bit, and the marginal step's two scalars
    start at their initial values (T = lambda = 1); its grid is 27 lengths x 36 angles (every 5 degrees)."""
    from landscape.estimators.train_unrolled import UnrolledTrainConfig, initial_model
    from landscape.estimators.unrolled import UnrolledBlind
    base = dict(family="motion", theta_max=5.0, kernel_size=7, iterations=2, channels=4, patch=16, seed=3)
    torch.manual_seed(11)
    src = UnrolledBlind(UnrolledTrainConfig(**base).family_spec(), 2, 4)
    torch.save({"config": dict(src.config), "state_dict": src.state_dict()}, tmp_path / "src.pt")
    model = initial_model(UnrolledTrainConfig(**base, init=str(tmp_path / "src.pt"), marginal=True))
    for k, v in src.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    assert model.marginal.log_temp.item() == 0.0 and model.marginal.log_lam.item() == 0.0
    grid = model.marginal.grid
    assert grid.shape == (27 * 36, 2) and float(grid[:, 0].max()) == 5.0 and float(grid[:, 1].max()) == 175.0
    assert UnrolledTrainConfig(family="gaussian", marginal=True).family_spec()["marginal"] == [27]


def test_branch_pretraining_trains_the_kernel_branch_alone_resumably_and_the_network_starts_from_it(tmp_path):
    """``--branch-pretrain``: the kernel branch alone learns the motion parameters from y: over its last 100 steps
    its training loss (the theta terms dominate it) averages below 0.8 times 1/3, the expected loss of the best
    branch that ignores y (a length of 4.5 costs var(L)/9^2 = 1/12; any fixed angle, E[L/9] E[sin^2] = 1/4). Then the whole network trains
    from it: with a vanishing main learning rate the written UNet and levels are the initial ones and the branch is
    the pretrained EMA; an interrupted pretraining resumes to the same weights bit for bit; its weights file is
    removed once loaded (the network's checkpoint holds them)."""
    from landscape.estimators.train_unrolled import UnrolledTrainConfig, initial_model, train_unrolled

    base = dict(family="motion", theta_max=9.0, kernel_size=11, iterations=2, channels=4, patch=32, batch=8, seed=2,
                init="none", branch_normalise=True, theta_weight=1.0, branch_pretrain=500, branch_lr=3e-3, steps=1,
                lr=1e-12, threads=1, checkpoint_every=200)
    cfg = UnrolledTrainConfig(**base)
    a = train_unrolled(cfg, tmp_path / "a.pt", progress=False)
    pre = torch.load(tmp_path / "a.branch.ckpt", map_location="cpu", weights_only=False)
    assert not (tmp_path / "a.branch.pt").exists() and pre["step"] == 500
    assert np.mean(pre["losses"][-100:]) < 0.8 / 3
    wa, start = _weights(a), initial_model(cfg).state_dict()
    for k, v in wa.items():
        if k.startswith("kernel_branch."):
            torch.testing.assert_close(v, pre["ema"][k], rtol=0, atol=1e-6)
        else:
            torch.testing.assert_close(v, start[k], rtol=0, atol=1e-6)
    assert any(not torch.equal(v, start[k]) for k, v in wa.items() if k.startswith("kernel_branch.") and v.numel() > 1)

    from landscape.denoisers.train import PatchSampler
    real, calls = PatchSampler(32), {"n": 0}

    def dies_at_step_300(batch, rng):            # the branch's checkpoint of step 200 is on disk by then
        calls["n"] += 1
        if calls["n"] == 300:
            raise _Interrupt
        return real(batch, rng)

    with pytest.raises(_Interrupt):
        train_unrolled(cfg, tmp_path / "b.pt", sampler=dies_at_step_300, progress=False)
    assert (tmp_path / "b.branch.ckpt").exists() and not (tmp_path / "b.ckpt").exists()
    wb = _weights(train_unrolled(cfg, tmp_path / "b.pt", progress=False))
    assert all(torch.equal(v, wb[k]) for k, v in wa.items())
