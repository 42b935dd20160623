"""Tables 1-9: their declarative specs (specs.py) and the paper's numbers (paper/, paper_numbers.py); running
them (runner.py, with trained.py and released.py), the result store (store.py), the cost plan (plan.py) and
the job launcher (launch.py, executors.py)."""
