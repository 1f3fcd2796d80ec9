"""The python-socketio glue both drivers share: one logic, two thin drivers (:mod:`sio_stream.aio`
for asyncio, :mod:`sio_stream.sync` for threads and green threads).

``_dispatch`` routes the wire events into each connection's protocol core and turns application
events into handler calls and acks; ``_connection`` is what one connection does besides sending;
``_call`` what one ``call()`` waits for; ``_fanout`` one stream to many recipients (the
sub-streams, the ``max_lag`` policy, relays); ``_stream_base`` is what every stream object shows;
``_host`` hides the server/client difference of python-socketio; ``_connect_scope`` knows which
task or thread runs a server's connect handler. Nothing here waits: a driver supplies its
stream and connection classes, its futures and its waiting.

It imports :mod:`sio_stream.core`, the error root and python-socketio; never a driver or any
layer above (``tests/test_architecture.py`` checks it).
"""
