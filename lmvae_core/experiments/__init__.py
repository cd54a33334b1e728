"""Heavy experiments, one module per notebook, each a function of its full configuration with cached results."""
