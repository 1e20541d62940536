"""Grid over the CNN's learning rate and weight decay: 16 trials that train vmapped together."""


def get_sweep():
  return {
      "method": "grid",
      "parameters": {
          "train.learning_rate": [1e-3, 2e-3, 3e-3, 5e-3],
          "train.weight_decay": [0.0, 1e-4, 1e-3, 1e-2],
      },
  }
