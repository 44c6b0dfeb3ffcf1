"""Compare runs: a person's last two trainings side by side, with their settings, test
accuracy, parameter count and time in one table, and their curves on shared axes.

The runs live in the session (a gr.State holding at most `KEPT` small summaries, never
the models), so changing one knob and training again shows what that knob did.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .knobs import KNOBS

KEPT = 2
# Fixed series names (and colours): a line plot keeps the series of its first data.
PREVIOUS, LATEST = "previous run", "latest run"
COLOURS = {PREVIOUS: "#94a3b8", LATEST: "#6366f1"}
LABELS = {"lr": "learning rate", "epochs": "trained for (epochs)"}  # the table's words for a knob, where not its name


@dataclass(frozen=True)
class RunSummary:
    number: int  # 1 for the session's first run, and so on
    settings: dict  # the knobs' values, by name (`KNOBS`)
    test_accuracy: float
    parameters: int
    seconds: float
    steps: int
    images_per_second: float
    stopped: bool
    loss_rows: tuple  # (step, train loss)
    accuracy_rows: tuple  # (step, test accuracy %)

    @property
    def name(self) -> str:
        return f"run {self.number}"


def keep(runs: list[RunSummary] | None, new: RunSummary) -> list[RunSummary]:
    """The newest `KEPT` runs, oldest first."""
    return [*(runs or [])[-(KEPT - 1) :], new] if KEPT > 1 else [new]


def next_number(runs: list[RunSummary] | None) -> int:
    return runs[-1].number + 1 if runs else 1


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def table(runs: list[RunSummary]) -> str:
    """A Markdown table, one column per run; rows where the runs differ are marked."""
    if not runs:
        return "Train a model: its settings and results appear here, and the next run's beside them."
    header = (
        "| | "
        + " | ".join(f"**{role(runs, run)}** (#{run.number})" for run in runs)
        + " |\n|---|"
        + "---|" * len(runs)
        + "\n"
    )
    lines = []
    results = (
        ("**test accuracy**", lambda r: f"**{r.test_accuracy:.1%}**"),
        ("parameters", lambda r: f"{r.parameters:,}"),
        ("time", lambda r: f"{r.seconds:.0f} s" + (" (stopped)" if r.stopped else "")),
        ("steps", lambda r: f"{r.steps:,}"),
        ("images/s", lambda r: f"{r.images_per_second:,.0f}"),
    )
    for label, cell in results:
        lines.append(f"| {label} | " + " | ".join(cell(run) for run in runs) + " |")
    for key in KNOBS:
        label = LABELS.get(key, key)
        values = [_cell(run.settings.get(key, "")) for run in runs]
        differs = len(runs) > 1 and len(set(values)) > 1
        name = f"**{label}** ◀ changed" if differs else label
        lines.append(f"| {name} | " + " | ".join(values) + " |")
    note = "" if len(runs) > 1 else "\n\nTrain again (change one knob) to compare the two runs."
    return header + "\n".join(lines) + note


def role(runs: list[RunSummary], run: RunSummary) -> str:
    return LATEST if run is runs[-1] else PREVIOUS


def curves(runs: list[RunSummary]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(loss, test accuracy) long-format tables, one series per run ("previous run",
    "latest run"), for gr.LinePlot."""
    loss = [(step, value, role(runs, run)) for run in runs for step, value in run.loss_rows]
    accuracy = [(step, value, role(runs, run)) for run in runs for step, value in run.accuracy_rows]
    if len(runs) == 1:
        # An empty point for the run to come: a line plot keeps the series of its first data,
        # so without it the next run's line would never be drawn.
        loss.append((0, None, PREVIOUS))
        accuracy.append((0, None, PREVIOUS))
    return (
        pd.DataFrame(loss, columns=["step", "loss", "run"]),
        pd.DataFrame(accuracy, columns=["step", "test accuracy (%)", "run"]),
    )
