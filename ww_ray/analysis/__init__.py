"""The analysis stage: regressions of reported error on spectral metrics, queries, reports, ingest.

* :mod:`ww_ray.analysis.regression` — per-series OLS fits and the Table-3 summary (pure computation).
* :mod:`ww_ray.analysis.ingest` / :mod:`ww_ray.analysis.reported` — WeightWatcher results of any
  release (:mod:`ww_layouts` maps their names, :mod:`ww_files` reads their files safely) and
  published figures into a dataset root.
* :mod:`ww_ray.analysis.query` — DuckDB SQL over a root, with documented example questions.
* :mod:`ww_ray.analysis.report` — PNG figures and an HTML page (:mod:`plots`, :mod:`flags`, :mod:`layer_esd`).
* :mod:`ww_ray.analysis.cli` — ``ww-ray regress | ingest | query | report``.
"""
