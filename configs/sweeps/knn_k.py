"""Grid over kNN's k and PCA (with configs/knn.py): pca 0 is exact distances on the pixels."""


def get_sweep():
  return {"method": "grid", "parameters": {"model.k": [1, 3, 5, 7], "model.pca": [0, 50]}}
