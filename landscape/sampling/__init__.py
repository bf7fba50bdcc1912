"""Posterior sampling: Langevin samplers of x | theta, y (``langevin``), guided reverse diffusion (DPS-type,
``diffusion``), Gibbs and Monte Carlo EM over (theta, x) with theta exact on a grid (``gibbs``), and the
ArviZ layout of their draws (``layout``)."""
