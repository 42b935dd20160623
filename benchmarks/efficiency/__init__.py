"""The efficiency benchmarks: RefineNet against dilated ResNets and FCN-32s, fast paths, memory-lean training
(benchmark.py with models.py, measure.py, report.py; `nox -s bench`), the training step against its peer
(speed.py) and converting an authors' model (conversion.py; `nox -s bench-convert`)."""
