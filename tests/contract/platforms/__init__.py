"""One contract-suite harness per registered platform (the module name is the platform's)."""
