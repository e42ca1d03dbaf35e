"""`python -m bench`: each benchmark side by side with the baseline a user would pick instead.

Every benchmark module exposes ``run(quick: bool, repeat: int) -> list[dict]`` and returns
table rows (see ``bench.report.row``). Baselines run in the same process, interleaved with
the platform's code, and are checked (``bench.checks``) so that a ratio cannot flatter us
by accident.
"""
