"""Inference: the one loader, Predictors, preprocessing, the demo app."""
