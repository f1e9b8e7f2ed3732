"""Applications on top of the library: `stnet predict`, `stnet export`, `stnet bench`."""
