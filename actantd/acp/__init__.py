"""Live sessions with agents over the Agent Client Protocol (ACP, what Zed speaks) on the agent's stdio.

- :mod:`.connection`: JSON-RPC 2.0 both ways over newline-delimited stdin/stdout;
- :mod:`.session`: one session: the handshake (``initialize``, ``session/new`` or ``session/load``),
  prompts with their streamed ``session/update``s, and permission requests;
- :mod:`.permissions`: the template's permission policy applied to ACP tool calls.
"""
