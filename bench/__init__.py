"""On-sale rush benchmarks: a production-style stack on this machine, a load
generator in its own process, and an audit of the database afterwards.

Not part of the test run; see bench/README.md."""
