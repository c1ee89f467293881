"""Hyperparameter sweeps for fair comparisons (``ftbench run --tune``; docs/tuning.md).

`space`: what is searched; `study`: Optuna storage, studies and exactly-once trial claims;
`sweep`: trials on a validation carve, then the final runs. Importing this package is cheap:
optuna loads only when a sweep runs.
"""
