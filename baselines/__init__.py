"""Baselines for I-JEPA — MAE and data2vec — as plain PyTorch, on the same method contract
(bench/methods.py) and the same training loop. Not implemented yet: tracked as its own issue.
"""
