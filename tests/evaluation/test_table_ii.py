"""Table II from grid reports: the cells are the shipped grid's rows, the goal compares only speeds both policies
reach, and bad sources are named."""

import copy
import json
import math

import pytest

from amp_jax.evaluation import table_ii

SHIPPED_AMP = "pretrained/a1_amp_cpu"


@pytest.fixture(scope="module")
def amp_grid():
    return table_ii.load_grid(SHIPPED_AMP)[1]


def scaled(report, factor, fall_at=()):
    """``report`` with every CoT multiplied by ``factor`` and the rows commanding ``fall_at`` fallen."""
    out = copy.deepcopy(report)
    for row in out["results"]:
        for key in ("cot_positive", "cot"):
            if row[key] is not None:
                row[key] *= factor
        if row["command"][0] in fall_at:
            row["upright"], row["fell_at_s"] = False, 3.0
    return out


def standing_at(report, speed):
    """``report`` with the policy standing still at the forward command ``speed`` (no distance, no CoT)."""
    out = copy.deepcopy(report)
    for row in out["results"]:
        if tuple(row["command"]) == (speed, 0.0, 0.0):
            row["achieved"], row["distance"], row["gait"] = [0.0, 0.0, 0.0], 0.0, "stand"
            row["cot_positive"] = row["cot"] = row["stride_hz"] = None
    return out


def test_cells_are_the_shipped_grid_s_straight_rows(amp_grid):
    cells = table_ii.cells(amp_grid, "amp")
    assert sorted(cells) == list(table_ii.SPEEDS)
    rows = {r["name"]: r for r in amp_grid["results"]}
    for speed, cell in cells.items():
        row = rows[f"forward {speed:g}"]
        assert cell.achieved_vx == row["achieved"][0] and cell.gait == row["gait"]
        assert (math.isnan(cell.cot_positive) if row["cot_positive"] is None
                else cell.cot_positive == row["cot_positive"])
        # CoT from absolute work is never below the one from positive work
        assert not cell.reached or cell.cot_absolute >= cell.cot_positive
    assert all(cell.reached for cell in cells.values())  # the shipped policy walks at every speed
    # a policy that stands at 0.4 m/s covers no distance, so it has no cost of transport: not reached
    standing = table_ii.cells(standing_at(amp_grid, 0.4), "amp")
    assert not standing[0.4].reached and math.isnan(standing[0.4].cot_positive) and standing[0.8].reached


def test_goal_compares_only_speeds_both_reach(amp_grid):
    sources = {"amp": standing_at(amp_grid, 0.4), "complex_reward": scaled(amp_grid, 1.3),
               "task_only": scaled(amp_grid, 2.0)}
    table = {p: table_ii.cells(r, p) for p, r in sources.items()}
    checks = table_ii.table_goal(table)
    assert checks["below_complex_reward_at_0.4"] is None  # AMP stands at 0.4
    assert all(checks[f"below_complex_reward_at_{s:g}"] for s in (0.8, 1.2, 1.6))
    assert all(checks[f"1.5x_below_task_only_at_{s:g}"] for s in (0.8, 1.2, 1.6))
    assert table_ii.goal_met(checks)
    assert table_ii.paper_order(table) == {0.4: None, 0.8: True, 1.2: True, 1.6: True}

    # task only at 1.4x: below it, but not 1.5x below; the ordering still holds
    table["task_only"] = table_ii.cells(scaled(amp_grid, 1.4), "task_only")
    checks = table_ii.table_goal(table)
    assert checks["1.5x_below_task_only_at_0.8"] is False and not table_ii.goal_met(checks)
    assert table_ii.paper_order(table)[0.8] is True

    # a complex-reward policy that falls everywhere is never compared, which is a miss, not a pass
    table["task_only"] = table_ii.cells(scaled(amp_grid, 2.0), "task_only")
    table["complex_reward"] = table_ii.cells(scaled(amp_grid, 0.5, fall_at=table_ii.SPEEDS), "complex_reward")
    checks = table_ii.table_goal(table)
    assert all(checks[f"below_complex_reward_at_{s:g}"] is None for s in table_ii.SPEEDS)
    assert not table_ii.goal_met(checks)
    assert "fell (" in table_ii.markdown_table(table)


def test_a_stride_at_the_search_band_s_edge_is_named_so(amp_grid):
    """A peak at the top of the footfall search band means the feet move faster than any stride it holds."""
    from amp_jax.analysis.footfall import MAX_STRIDE_HZ

    fast = copy.deepcopy(amp_grid)
    for row in fast["results"]:
        row["stride_hz"] = MAX_STRIDE_HZ - 0.08
    table = {p: table_ii.cells(r, p) for p, r in (("amp", amp_grid), ("complex_reward", amp_grid),
                                                   ("task_only", fast))}
    lines = table_ii.markdown_table(table).splitlines()
    assert all("(band edge)" in line for line in lines if line.startswith("| task reward only"))
    assert not any("(band edge)" in line for line in lines if line.startswith("| AMP"))


def test_the_command_line_writes_table_json_and_figure(amp_grid, tmp_path, capsys):
    paths = {}
    for policy, factor in (("amp", 1.0), ("complex_reward", 0.9), ("task_only", 5.0)):
        paths[policy] = tmp_path / f"{policy}.json"
        paths[policy].write_text(json.dumps({"command_grid": scaled(amp_grid, factor)}))
    out_json, out_png = tmp_path / "table.json", tmp_path / "table.png"
    assert table_ii.main(["--amp", str(paths["amp"]), "--complex-reward", str(paths["complex_reward"]),
                          "--task-only", str(paths["task_only"]), "--json", str(out_json),
                          "--png", str(out_png)]) == 0
    text = capsys.readouterr().out
    assert "| AMP | 0.8 | 0.91 (0.77) | 0.79 (0.93) |" in text
    assert "below_complex_reward_at_0.8: no" in text and "baseline goal not met" in text
    report = json.loads(out_json.read_text())
    assert report["goal"]["1.5x_below_task_only_at_1.2"] is True and report["goal_met"] is False
    assert report["paper"]["task_only"]["0.4"] == {"cot_positive": 14.03, "achieved": 0.42}
    assert out_png.stat().st_size > 10_000


def test_a_source_without_a_grid_is_named(tmp_path, capsys):
    (tmp_path / "evaluation.json").write_text(json.dumps({"tracking_rms": {}}))
    with pytest.raises(table_ii.TableError, match=r"evaluation.json: no command grid"):
        table_ii.load_grid(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(table_ii.TableError, match=r"bad.json: not valid JSON"):
        table_ii.load_grid(bad)
    with pytest.raises(table_ii.TableError, match=r"missing: not found"):
        table_ii.load_grid(tmp_path / "missing")
    partial = {"results": [r for r in table_ii.load_grid(SHIPPED_AMP)[1]["results"] if r["name"] != "forward 1.2"]}
    with pytest.raises(table_ii.TableError, match=r"no row commanding \(1.2, 0, 0\)"):
        table_ii.cells(partial, "amp", "partial.json")
    assert table_ii.main(["--amp", str(bad), "--complex-reward", str(bad), "--task-only", str(bad)]) == 2
    assert "table_ii: " in capsys.readouterr().err
