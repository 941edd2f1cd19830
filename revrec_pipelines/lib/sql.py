"""Load SQL from the project's top-level `sql/` folder (one file per table or step)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

SQL_ROOT = Path(__file__).resolve().parents[2] / "sql"


@cache
def sql_text(name: str) -> str:
    """The text of `sql/<name>.sql`, e.g. sql_text("revrec/order_lines")."""
    path = SQL_ROOT / f"{name}.sql"
    if not path.exists():
        raise FileNotFoundError(f"SQL file {path} is missing: the project's sql/ folder must sit beside the package")
    return path.read_text(encoding="utf-8")


def render(name: str, **params: object) -> str:
    text = sql_text(name)
    return text.format(**params)


def statements(sql: str) -> list[str]:
    """Split a file into statements on `;` at line ends (our SQL files keep one statement per `;`)."""
    out, buf = [], []
    for line in sql.splitlines():
        buf.append(line)
        if line.rstrip().endswith(";"):
            stmt = "\n".join(buf).strip()
            if _has_code(stmt):
                out.append(stmt)
            buf = []
    tail = "\n".join(buf).strip()
    if _has_code(tail):
        out.append(tail)
    return out


def _has_code(stmt: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in stmt.splitlines())


def run_file(con, name: str, **params: object) -> None:
    for stmt in statements(render(name, **params)):
        con.execute(stmt)
