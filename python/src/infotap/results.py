"""A results directory read back: ``run.json`` as a dict and every result table as a ``pyarrow.Table``.

A table is read from ``DIR/<table>.parquet``, else ``DIR/<table>.arrow`` (what ``analyze`` and ``serve`` write at the
end), else from the parts ``DIR/<table>/part-<k>.parquet`` (or ``.arrow``) that ``serve`` writes while a run goes on,
concatenated in window order: the same rules as the engine's ``report`` (pipeline/report/results.ts).

>>> import pyarrow as pa, pyarrow.parquet as pq, tempfile, os
>>> d = tempfile.mkdtemp()
>>> os.makedirs(f"{d}/layer_summary")
>>> pq.write_table(pa.table({"step": [0], "entropy_mean": [1.5]}), f"{d}/layer_summary/part-00000000.parquet")
>>> pq.write_table(pa.table({"step": [10], "entropy_mean": [1.25]}), f"{d}/layer_summary/part-00000001.parquet")
>>> r = read_results(d)
>>> r.run is None, r.tables["layer_summary"].column("step").to_pylist()
(True, [0, 10])
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Dict, List, Optional

import pyarrow as pa

from .errors import InputError

_TABLE_FILE = re.compile(r"^([A-Za-z0-9_]+)\.(parquet|arrow)$")
_PART_FILE = re.compile(r"^part-(-?\d+)\.(parquet|arrow)$")
_TABLE_DIR = re.compile(r"^[A-Za-z0-9_]+$")


class Results:
    """What a run produced: ``run`` (``run.json`` as a dict, None for a live run still going), ``tables`` (name to
    ``pyarrow.Table``), ``files`` (name to the files read, relative to ``dir``) and ``dir``.

    ``warnings`` holds the engine's warning lines (non-finite values counted, values clipped).
    """

    def __init__(
        self,
        run: Optional[dict],
        tables: Dict[str, pa.Table],
        dir: Optional[str] = None,
        files: Optional[Dict[str, List[str]]] = None,
        warnings: Optional[List[str]] = None,
    ):
        self.run = run
        self.tables = tables
        self.dir = dir
        self.files = files or {}
        self.warnings = warnings or []

    @property
    def complete(self) -> Optional[bool]:
        """``run.json``'s ``complete`` flag (None without run.json)."""
        return None if self.run is None else bool(self.run.get("complete"))

    def __getitem__(self, name: str) -> pa.Table:
        try:
            return self.tables[name]
        except KeyError:
            raise KeyError(
                f"Cannot get table {name!r} as the results have no such table (has: {', '.join(sorted(self.tables))})"
                f": current value is {name!r}"
            ) from None

    def __contains__(self, name: str) -> bool:
        return name in self.tables

    def to_pandas(self, name: str):
        """Table ``name`` as a ``pandas.DataFrame`` (needs pandas)."""
        table = self[name]
        try:
            import pandas  # noqa: F401
        except ImportError:
            raise ImportError(
                "Cannot convert to pandas as pandas is not installed (pip install pandas): current value is no pandas"
            ) from None
        return table.to_pandas()

    def __repr__(self) -> str:
        tables = ", ".join(f"{k}: {t.num_rows} rows" for k, t in sorted(self.tables.items()))
        return f"Results(dir={self.dir!r}, complete={self.complete}, tables={{{tables}}})"


def _read_table(path: Path) -> pa.Table:
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        with pa.OSFile(str(path)) as source:  # read into memory: the folder may be removed next (a temporary one)
            return pa.ipc.open_file(source).read_all()
    except (pa.ArrowInvalid, OSError) as e:
        kind = "Parquet" if path.suffix == ".parquet" else "Arrow IPC"
        raise InputError(
            f"Cannot read result table as {path} is not valid {kind}: current value is {str(e).splitlines()[0]!r}"
        ) from None


def _concat(tables: List[pa.Table]) -> pa.Table:
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="default")
    except TypeError:  # pyarrow < 14
        return pa.concat_tables(tables, promote=True)


def read_results(dir: "str | os.PathLike[str]") -> Results:
    """Reads a results directory of ``analyze`` or ``serve`` (also while ``serve`` runs: its part files).

    Raises :class:`~infotap.errors.InputError` when the directory holds no table and no ``run.json``.
    """
    root = Path(dir)
    if not root.is_dir():
        raise InputError(f"Cannot read results as the directory does not exist: current value is {str(dir)!r}")
    entries = sorted(os.scandir(root), key=lambda e: e.name)
    tables: Dict[str, pa.Table] = {}
    files: Dict[str, List[str]] = {}
    finals: Dict[str, str] = {}
    for e in entries:
        m = _TABLE_FILE.match(e.name) if e.is_file() else None
        if m and (m.group(2) == "parquet" or m.group(1) not in finals):
            finals[m.group(1)] = e.name
    for name, file in finals.items():
        tables[name] = _read_table(root / file)
        files[name] = [file]
    for e in entries:
        if not e.is_dir() or e.name in finals or e.name == "checkpoint" or not _TABLE_DIR.match(e.name):
            continue
        parts: Dict[int, str] = {}
        for p in os.scandir(e.path):
            m = _PART_FILE.match(p.name) if p.is_file() else None
            if m and (m.group(2) == "parquet" or int(m.group(1)) not in parts):
                parts[int(m.group(1))] = p.name
        if parts:
            order = sorted(parts)
            tables[e.name] = _concat([_read_table(root / e.name / parts[k]) for k in order])
            files[e.name] = [f"{e.name}/{parts[k]}" for k in order]
    run = None
    try:
        run = json.loads((root / "run.json").read_text())
    except FileNotFoundError:
        pass
    except json.JSONDecodeError as e:
        raise InputError(f"Cannot read run.json as it is not valid JSON: current value is {str(e)!r}") from None
    if not tables and run is None:
        raise InputError(
            "Cannot read results as the directory holds no result table (<table>.parquet, <table>.arrow, "
            f"<table>/part-*) and no run.json: current value is {str(dir)!r}"
        )
    return Results(run, tables, str(root), files)
