"""Process supervision building blocks; composed per agent by :mod:`.process`.

- :mod:`.spawn`   start an agent detached (new session, O_APPEND logs), typed launch errors, subreaper
- :mod:`.exits`   pidfd exit watch for children and re-adopted processes, orphan reaping, PID-reuse guard
- :mod:`.policy`  pure restart maths: policy, exponential backoff, restart budget
- :mod:`.kill`    terminate an agent's whole tree, escaped descendants included
- :mod:`.logs`    rotation (copy + collapse/truncate), tails, following across rotation
- :mod:`.metrics` live cpu/rss/uptime/children figures
- :mod:`.health`  command and TCP probes, the periodic monitor
- :mod:`.procfs`  whole-system /proc scans shared by kill and metrics
- :mod:`.process` :class:`~.process.AgentProcess`, one per supervised agent: launch, exits, restarts, stop,
  attach, detach (the only module here that knows instance records)
"""
