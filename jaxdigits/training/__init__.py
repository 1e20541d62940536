"""Training: the one epoch loop, steps, state, parallel strategies, checkpoints."""
