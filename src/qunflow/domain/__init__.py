"""Pure rules of the chain: no I/O, no framework imports."""
