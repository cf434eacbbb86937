"""Runners: what runs agent sessions for calls, above ``voice/`` and ``transports/``.

- :mod:`voxlane.runners.sip_server`: answer SIP calls, one ``AgentSession`` per call
  (``SipServer``, ``serve_sip``); see docs/sip.md.
- :mod:`voxlane.runners.loader`: load a user's agent file (``load_agent_factory``).
- :mod:`voxlane.runners.stack`: assemble the local provider stack (``local_stack``,
  ``connect_stack``).

``worker/`` and ``cli/`` build on these; nothing here imports ``worker/`` or ``cli/``
(``tests/test_import_graph.py`` checks it).
"""
