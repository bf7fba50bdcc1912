"""Cosine similarity of learned Tweedie scores with the exact GMM score, on fresh GMM samples.

    python benchmarks/gmm_score_agreement.py [--samples 256]

The 16x16 natural-crop GMM (``priors.fit_natural_gmm((16, 16), 10, 10000)``) gives the exact
score of p_s; ``denoiser-gmm16`` was trained on its samples, ``denoiser-gray`` never saw them.
"""

import argparse

import torch

from landscape import priors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=256)
    args = ap.parse_args()
    gmm = priors.fit_natural_gmm((16, 16), 10, 10000, progress=False)
    models = {n: priors.load_model(n) for n in ("denoiser-gmm16", "denoiser-gray")}
    print(f"{'s':>6}" + "".join(f"{n:>18}" for n in models) + "   (mean cosine, min)")
    for s in (0.02, 0.05, 0.1):
        x = gmm.sample(args.samples, rng=3)
        z = x + s * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
        exact = gmm.score(z, s)
        row = []
        for m in models.values():
            with torch.no_grad():
                learned = (m(z.float(), s).double() - z) / s ** 2
            cos = torch.nn.functional.cosine_similarity(learned.flatten(1), exact.flatten(1), dim=1)
            row.append(f"{float(cos.mean()):.3f} ({float(cos.min()):.2f})")
        print(f"{s:6.2f}" + "".join(f"{r:>18}" for r in row))


if __name__ == "__main__":
    main()
