"""TPE over the CNN's learning rate, weight decay, batch size and dropout, median pruning."""


def get_sweep():
  return {
      "method": "tpe",
      "num_trials": 24,
      "seed": 0,
      "pruner": "median",
      "parameters": {
          "train.learning_rate": {"distribution": "log_uniform", "min": 5e-4, "max": 1e-2},
          "train.weight_decay": {"distribution": "log_uniform", "min": 1e-6, "max": 1e-2},
          "train.batch_size": {"distribution": "choice", "values": [64, 128, 256]},
          "model.dropout": {"distribution": "uniform", "min": 0.0, "max": 0.5},
      },
  }
