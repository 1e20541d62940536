"""Analysis: evaluation, figures, reports, model comparison."""
