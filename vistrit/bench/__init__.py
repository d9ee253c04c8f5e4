"""Measurements behind ``python -m vistrit bench``: each workload returns figures as data.

Nothing here prints; :mod:`vistrit.cli` formats the results. Timings use
``time.perf_counter`` and report the median of several repeats, because the machine is
shared and noisy. Read next: :mod:`vistrit.bench.codec`.
"""
