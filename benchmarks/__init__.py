"""The paper's tables reproduced, reported and timed.

tables/      what each table runs and the paper's numbers; training, evaluating, storing and launching the runs
report/      markdown, figures, claims and notebooks rendered from results/*.csv
efficiency/  the efficiency benchmarks (`nox -s bench`, `nox -s bench-convert`)
reproduce.py the command: `python -m benchmarks.reproduce 2` (`nox -s reproduce-table2`)
provenance.py code version, device and precision stamped on every result row
"""
