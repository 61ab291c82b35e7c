"""The embedded local stack: the real router and job command on one machine, against a moto server on 127.0.0.1.

`LocalStack` (in `runtime.py`) starts and stops the parts; `session.py` decides whether a CLI call uses it.
"""
