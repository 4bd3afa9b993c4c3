"""The Certain side for demos and tests: a REST API sandbox to poll (`sandbox.py`), and
simulated traffic pushed to the ingest API with the demo account it is sent for."""
