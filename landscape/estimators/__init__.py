"""Estimators of the blind problem beside the joint MAP: the exact Bayes MMSE of the GMM sandbox
(``bayes``), blind unrolled networks trained to reconstruct (``unrolled``, trained by
``train_unrolled``), and plug-and-play baselines (``pnp``)."""
