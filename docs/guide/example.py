"""The README's example: the joint MAP picks (δ, y), MAP_θ finds the blur (exact Gaussian prior),
and the shipped learned prior's joint-MAP profile on a small crop."""
import numpy as np

import landscape as ls
from landscape import data, kernels, marginal, priors

image = data.center_crop(data.load("camera"), 64)
problem = ls.BlindDeblur.synthetic(image, kernels.Gaussian(size=15), theta=1.5, noise=0.01, rng=0)
theta = np.linspace(0, 3, 31)
gauss = priors.GaussianPrior.fit(data.TRAIN, (64, 64))                  # exact prior: closed forms
profile = ls.scan.profile(ls.Posterior(problem, gauss), theta, progress=False)   # min_x E(θ, x)
nll = marginal.marginal_nll(problem, gauss, theta)                      # −log p(y | θ), x integrated out
print("joint MAP θ:", theta[np.argmin(profile.profile_energy.values)], "  MAP_θ:", theta[np.argmin(nll)])

small = ls.BlindDeblur.synthetic(data.center_crop(data.load("camera"), 32), kernels.Gaussian(size=9),
                                 theta=1.5, noise=0.01, rng=0)
learned = priors.load("gs-denoiser-gray", s=0.01)                       # shipped network, explicit potential
coarse = ls.scan.profile(ls.Posterior(small, learned), np.linspace(0, 3, 7), progress=False)
print("learned prior, joint MAP θ:", float(coarse.theta[np.argmin(coarse.profile_energy.values)]))
