"""Actant's benchmarks (the quality bars in the README): ``make bench`` / ``python -m bench [--quick] [--only NAME]``.

Each figure of the quality-bar table is measured against a real ``actantd`` (and, where the table names it, a
real ``supervisord`` from the dev venv) in temp directories on this machine, over Unix sockets, with bounded
counts and durations. Results are printed and written to ``bench/results/latest.md`` (git-ignored).
"""
