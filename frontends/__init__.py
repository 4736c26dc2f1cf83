"""Front ends: readers for the files the verifier takes in (VNN-LIB properties, ...)."""
