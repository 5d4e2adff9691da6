"""Noise no party knows, sampled under MPC: the discrete Laplace (laplace) and
discrete Gaussian (gaussian) mechanisms, and a shared sum with its noise added as
the job's noise plan says (release)."""
