"""The MPC side of mpcgate, below the gateway (which imports it; never the reverse).

Bottom to top: `errors` and `transport` (typed errors; what the runtime needs of a
transport); `catalogue` (the job kinds, their parameters, context and release
rules: no torch); `runtime` (CrypTen on modern torch, its communicator on a
transport, the dealer); `programs` (what each job kind computes). Importing this
package does nothing: CrypTen is made ready by `mpc.runtime`, which `mpc.programs`
imports first.
"""
