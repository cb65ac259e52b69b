"""Fault drills: a short rush against the production-style stack while a
fault is injected, then an audit (see bench/drills/run.py and bench/README.md)."""
