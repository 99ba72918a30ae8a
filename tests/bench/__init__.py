"""make bench (python -m tests.bench): the seed's strategy against ltsflow, measured, never computed.

- proxy.py: a counting HTTP proxy in front of the S3 server (what the cluster side really fetched);
- shimmed.py: runs under the fake Slurm shims with the real tools and the real S3 server;
- real_slurm.py: end-to-end wall time on a real Slurm, one cluster and a federation;
- __main__.py: the cases, out/bench.json and the table.
"""
