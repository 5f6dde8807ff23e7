"""One-shot runs (``agent run``): execute a backend's one-shot argv in the workspace and report what it did.

- :mod:`.executor` runs one process tree with a timeout, streams its output line by line and keeps a bounded
  tail of each stream;
- :mod:`.parsers` turns the kept stdout into the result text, session id, cost and tokens, one module per
  output format (pure functions, no I/O);
- :mod:`.service` ties them to instances: one run at a time per instance, the session id kept on the record
  for ``--continue``, every run journaled as an ``execution``.
"""
