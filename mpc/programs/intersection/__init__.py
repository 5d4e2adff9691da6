"""Private set intersection and row alignment for vertical jobs: the ECDH protocol
(protocol, with the blinding helper process: blinding, helper), the alignment of
every party's rows before a vertical program runs (align), and the psi.intersect
job (program). What a valid key is and how it is hashed: mpc.catalogue.keys."""
