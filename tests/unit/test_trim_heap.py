"""fileimport.trim_heap hands SQLite's freed page cache back to the OS, also when live allocations lie above it
(the import's 512 MiB cache would otherwise stay in the process through the facts build)."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                                reason="malloc_trim is glibc's; elsewhere trim_heap does nothing")

SCRIPT = """
import ctypes, os, sqlite3, sys
from qunflow.services.fileimport import trim_heap

def rss():
    return int(next(line for line in open("/proc/self/status") if line.startswith("VmRSS")).split()[1]) // 1024

db = sqlite3.connect(sys.argv[1])
db.execute("CREATE TABLE t (x BLOB)")
db.executemany("INSERT INTO t VALUES (?)", ((os.urandom(3000),) for _ in range(40_000)))  # about 120 MB
db.commit()
db.execute("PRAGMA cache_size=-400000")
db.execute("SELECT sum(length(x)) FROM t").fetchone()  # every page into the cache
malloc = ctypes.CDLL(None).malloc
pinned = [malloc(64) for _ in range(1_000)]  # live allocations above the cache's pages
db.execute("PRAGMA cache_size=-2000")
db.execute("PRAGMA shrink_memory")
before = rss()
trim_heap()
print(before, rss())
"""


def test_trim_heap_gives_the_freed_cache_back(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "cache.db")], capture_output=True, text=True,
                          check=True)
    before, after = map(int, done.stdout.split())
    assert before - after > 80, (before, after)  # MiB: most of the ~120 MB cache
