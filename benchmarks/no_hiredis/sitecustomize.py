"""On PYTHONPATH, makes ``import hiredis`` fail, so that redis-py parses with its pure-Python
parser: ``cluster.py --compare PATH --compare-no-hiredis`` measures a checkout as it ran before
the cluster extra installed hiredis."""

import sys
from importlib.abc import MetaPathFinder


class _NoHiredis(MetaPathFinder):
    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "hiredis" or name.startswith("hiredis."):
            raise ImportError("hiredis is hidden for this benchmark run")
        return None


sys.meta_path.insert(0, _NoHiredis())
