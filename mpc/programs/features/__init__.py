"""Feature programs of the credit workflow: binning, weights of evidence and
information values (woe), computed against a label another party may hold."""
