"""`python -m benchmarks.efficiency` (`nox -s bench`): the efficiency benchmark -> results/efficiency.*"""

import sys

from benchmarks.efficiency.benchmark import main

sys.exit(main())
