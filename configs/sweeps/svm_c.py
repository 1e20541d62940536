"""Grid over the RBF SVM's C and the PCA size of its pixel features (with configs/svm.py)."""


def get_sweep():
  return {"method": "grid", "parameters": {"model.C": [1.0, 3.0, 10.0, 30.0],
                                           "model.pca": [30, 50, 80]}}
