"""A minimal Django project for the bluegreen backend tests: one settings
module configured from the environment, two models and ``run.py``, the
scenarios that the tests run in subprocesses."""
