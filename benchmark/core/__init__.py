"""The torch-free core (numpy / scipy only), imported by both the engine and the reports.

- `benchmark.core.results`: the result schema, run ids, atomic writes, reading run directories.
- `benchmark.core.metrics`: the one exact metric kernel (AP, ROC AUC, d', top-1, balanced accuracy, macro means),
  for one weighting or many at once (views, bootstrap resamples, prior-shift curves).
- `benchmark.core.views`: evaluation views of a scored pool, raking, `ViewContext`.
- `benchmark.core.priors`: class-prior files (CSV) and prior targets.
- `benchmark.core.stats`: intervals over seeds and bootstrap resamples.
- `benchmark.core.errors`: `UserError`.

Nothing here imports torch, the engine (`benchmark.engine`, `benchmark.method`, ...), `methods`, `tasks` or
`reports`; tests/test_architecture.py enforces it.
"""
