"""Everything rendered from results/*.csv: table markdown and figures (table_report.py, plots.py), the claims
scorecard (claims.py), sentences derived from the numbers (summaries.py, measured.py) and the notebooks
(notebooks.py). `python -m benchmarks.report` re-renders them all."""
