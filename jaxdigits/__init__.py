"""jaxdigits: fast, complete JAX/Flax training for handwritten digit recognition."""

__version__ = "0.1.0"
