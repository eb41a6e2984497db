"""qunflow: the community-distribution chain, from ad click to order, with the numbers to prove it."""

__version__ = "0.1.0"
