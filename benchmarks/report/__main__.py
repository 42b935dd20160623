"""`python -m benchmarks.report` (`nox -s plots`): re-render every table's markdown and figure and the claims."""

from benchmarks.report.table_report import main

raise SystemExit(main())
