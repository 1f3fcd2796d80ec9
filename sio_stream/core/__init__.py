"""The sans-IO protocol: every stream of a connection as a pure state machine.

Wire names (``_wire``), stream options (``_options``), settings (``_config``), placeholders
(``_placeholder``), chunk encoding (``_chunks``), the state table (``_state``), credit windows
(``_window``), the memory budget (``_budget``), one stream's state (``_streamcore``) and the
protocol core (``_core``, with its reading side ``_reading`` and the negotiated digest
``_digest``).

It imports only the standard library, its own modules and the error root
(:mod:`sio_stream._errors`): no socketio, asyncio, threading, anyio or file library, so two cores
can be wired back to back and driven by hypothesis. Everything else imports it, never the
reverse (``tests/test_architecture.py`` checks both).
"""
