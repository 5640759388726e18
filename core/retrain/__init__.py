"""Retraining a model on recent data: executors that run the command, and the result commit.

:mod:`core.retrain.base` holds the contract every executor keeps (what a
command receives, what an executor yields and raises); :mod:`core.retrain.kinds`
maps ``[model.retrain] executor`` to its implementation. The journalled
operation the front ends call lives in :mod:`core.services.retrain`.
"""
