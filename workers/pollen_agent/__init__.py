"""The Pollen site agent: Celery workers that run at a hospital site.

This package never imports Django. torch is imported lazily, only by the
modules under ``ml/`` and the tasks that use them.
"""
