"""``python -m sio_stream``: the ``sio-stream`` command."""

from ._cli import main

raise SystemExit(main())
