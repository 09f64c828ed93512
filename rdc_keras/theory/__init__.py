"""Information-theoretic closed forms and Monte Carlo checks for RDC representations."""
