"""The asyncio driver: :class:`~sio_stream.StreamSocket` and :func:`~sio_stream.ss` for an
``AsyncServer`` or ``AsyncClient`` (``_socket``), :class:`~sio_stream.IOStream` as an
``anyio.abc.ByteStream`` (``_stream``), one connection's ordered sender (``_connection``) and
the waiting of one stream to many recipients (``_fanout``).

It drives the shared logic of :mod:`sio_stream.glue` on the protocol core of
:mod:`sio_stream.core`; the public names are re-exported by :mod:`sio_stream`.
"""
