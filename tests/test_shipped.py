"""The shipped learned priors: present, loadable offline, and doing their job on held-out images."""

import numpy as np
import pytest
import torch

from landscape import data, priors as P
from landscape.denoisers.evaluate import BASELINES, psnr, tune


@pytest.mark.parametrize("name", sorted(P.priors_shipped() if hasattr(P, "priors_shipped") else P.shipped.SHIPPED))
def test_weights_are_shipped_small_and_load(name):
    path = P.shipped.WEIGHTS / f"{name}.pt"
    assert path.exists() and path.stat().st_size < 10 * 2 ** 20
    model = P.load_model(name)
    assert not any(p.requires_grad for p in model.parameters())
    assert model.meta["train_config"]["steps"] > 0


def test_learned_denoiser_beats_classical_baselines_on_camera():
    x = data.center_crop(data.load("camera"), 128)
    rng = np.random.default_rng(0)
    s = 25 / 255
    z = x + s * rng.standard_normal(x.shape)
    model = P.load_model("denoiser-gray")
    with torch.no_grad():
        d = model(torch.as_tensor(z, dtype=torch.float32)[None], s)[0].double().numpy()
    ours = psnr(np.clip(d, 0, 1), x)
    for m, (fn, _) in BASELINES.items():
        base = psnr(fn(z, tune(m, s, np.random.default_rng(1))), x)
        assert ours > base + 0.5, (m, ours, base)


def test_gmm_trained_denoiser_score_agrees_with_exact_score():
    gmm = P.fit_natural_gmm((16, 16), 10, 10000, progress=False)
    model = P.load_model("denoiser-gmm16")
    s = 0.05
    x = gmm.sample(64, rng=3)
    z = x + s * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
    with torch.no_grad():
        learned = (model(z.float(), s).double() - z) / s ** 2
    exact = gmm.score(z, s)
    cos = torch.nn.functional.cosine_similarity(learned.flatten(1), exact.flatten(1), dim=1)
    assert float(cos.mean()) > COSINE_FLOOR


# measured 0.XX on this set (README); the floor leaves room for seeds and BLAS differences
COSINE_FLOOR = 0.9
