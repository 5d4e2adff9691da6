"""Differential privacy's arithmetic, without torch: the `dp` parameter and what
it combines with (parameters), the releases of a dp job and the noise each gets
(plan), and the Gaussian mechanism's calibration and accounting (accounting).
The gateway's budgets charge exactly what the plan says; the noise itself is
sampled under MPC by mpc.programs.noise."""
