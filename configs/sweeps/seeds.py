"""Eight seeds of one config, trained as one vmapped group: an ensemble's members in one
program (then ``python -m jaxdigits.evaluate --workdir DIR/trial_*``)."""


def get_sweep():
  return {"method": "grid", "parameters": {"seed": list(range(8))}}
