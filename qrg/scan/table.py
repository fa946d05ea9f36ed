"""The ``qrg scan`` table: one line per point."""

from __future__ import annotations

from ..stats import format_value_error

TABLE_COLUMNS = (("m²", 10), ("E/site", 22), ("⟨M²⟩", 24), ("U4", 22), ("⟨|M|⟩", 22), ("peak w.", 18),
                 ("Var(E_loc)", 11))


def _fmt(o) -> str:
    if o is None or o.get("mean") is None:
        return "-"
    err = o.get("err")
    return format_value_error(o["mean"], err) if err else f"{o['mean']:.6g}"


def table_header() -> str:
    return "  ".join(f"{name:>{w}}" for name, w in TABLE_COLUMNS)


def table_row(p: dict, kept: bool = False) -> str:
    """One line of the ``qrg scan`` table for point record ``p``."""
    e = {"mean": p.get("energy_per_site"), "err": p.get("energy_per_site_err")}
    var = p.get("variance")
    cells = [f"{p['m2']:.6g}", _fmt(e), _fmt(p.get("M2")), _fmt(p.get("U4")), _fmt(p.get("abs_M")),
             _fmt(p.get("peak_weight")), "-" if not var or var.get("mean") is None else f"{var['mean']:.3g}"]
    line = "  ".join(f"{c:>{w}}" for c, (_, w) in zip(cells, TABLE_COLUMNS))
    status = p.get("status")
    if status and status != "completed":
        line += f"  [{status}]"
    return line + ("  (kept)" if kept else "")
