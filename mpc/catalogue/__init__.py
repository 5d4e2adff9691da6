"""What the control plane and the job programs agree on, without torch: the job
kinds with their parameters and input checks (kinds, parameters), the context a
program runs in and each party's release rules (context), and what a valid key
is (keys). The gateway validates, reviews and plans jobs from here; only the
worker imports the programs themselves."""
