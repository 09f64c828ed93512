"""Training loops: the RDC trainer (phases 1 and 2) and the reference classifier."""
