"""Files and pipes over streams: :func:`~sio_stream.send_file`, :func:`~sio_stream.receive_file`,
:func:`~sio_stream.pipe` and :func:`~sio_stream.prefix_digest` on asyncio, resumed and verified,
with the disk overlapped with the network; and the pieces the sync API's file functions
(:mod:`sio_stream.sync`) share with them.

It builds on the drivers (:mod:`sio_stream.aio`) and the error root; the public names are
re-exported by :mod:`sio_stream`.
"""
