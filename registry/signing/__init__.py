"""OpenPGP keys: generation, armored export, detached signing and verification (pysequoia)."""
