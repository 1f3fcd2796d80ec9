"""``python -m sio_stream``: the ``sio-stream`` command."""

from .cli import main

raise SystemExit(main())
