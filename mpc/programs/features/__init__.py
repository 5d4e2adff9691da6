"""Feature programs of the credit workflow: binning, weights of evidence and
information values (woe) against a label another party may hold, and the
population stability index (stability: woe's program with a period in the
label's place), each computed under MPC."""
