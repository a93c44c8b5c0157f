"""A table that keeps its point on any terminal width.

Fixed columns (times, amounts, names) are never cut. The one flexible column (a query, a
reason, a description) takes what is left and wraps; when what is left is too narrow to
read (an 80-column terminal under a nine-column table), it moves onto its own indented
line under each row instead of shrinking to one letter. The table is only as wide as its
content: a short table does not stretch one column across the screen.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.padding import Padding
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

MIN_FLEXIBLE = 28  # narrower than this, the flexible column goes under its row
_GAP = 3  # SIMPLE_HEAD with pad_edge=False: one space of padding each side plus the divider


def _cell_text(cell: Any) -> Text:
    return cell if isinstance(cell, Text) else Text(str(cell))


class FittedTable:
    """``headers``: (name, justify) pairs; ``flexible``: the name of the column that gives
    way (None: none does); ``max_chars``: cut the flexible text after this many
    characters (a stored query can be pages long)."""

    def __init__(
        self,
        headers: list[tuple[str, str]],
        rows: Iterable[list[Any]],
        flexible: str | None = "query",
        caption: str | None = None,
        max_chars: int | None = None,
    ) -> None:
        self.headers = headers
        self.rows = [list(r) for r in rows]
        names = [name for name, _ in headers]
        self.flex = names.index(flexible) if flexible in names else None
        self.caption = caption
        self.max_chars = max_chars

    # --- pieces --------------------------------------------------------------------

    def _flex_text(self, cell: Any) -> Text:
        text = _cell_text(cell).copy()
        if self.max_chars is not None and len(text.plain) > self.max_chars:
            text.truncate(self.max_chars - 1)
            text.append("…")
        return text

    def _fixed_width(self) -> int:
        """Width of every column but the flexible one, gaps included."""
        widths = []
        for index, (name, _) in enumerate(self.headers):
            if index == self.flex:
                continue
            cells = [_cell_text(r[index]).cell_len for r in self.rows]
            widths.append(max([len(name), *cells]))
        return sum(widths) + _GAP * len(widths)

    def _table(self, columns: list[int], flex_width: int | None) -> Table:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, expand=False)
        for index in columns:
            name, justify = self.headers[index]
            if index == self.flex:
                table.add_column(name, justify=justify, overflow="fold", max_width=flex_width)  # type: ignore[arg-type]
            else:
                table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        for row in self.rows:
            table.add_row(*(self._flex_text(row[i]) if i == self.flex else row[i] for i in columns))
        return table

    # --- rich protocol ----------------------------------------------------------------

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, options.max_width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        every = list(range(len(self.headers)))
        room = width - self._fixed_width()
        if self.rows and room + _GAP < 0:  # not even the fixed columns fit: cut, they were "…"
            cells = [[self._flex_text(c) if i == self.flex else c for i, c in enumerate(row)]
                     for row in self.rows]
            yield from records([name for name, _ in self.headers], cells)
        elif self.flex is None or not self.rows or room >= MIN_FLEXIBLE:
            yield self._table(every, max(room, 1) if self.flex is not None else None)
        else:
            yield from self._stacked(console, options)
        if self.caption:
            yield Text(self.caption, style="dim")

    def _stacked(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """The fixed columns as a table, each row followed by its flexible text, indented."""
        fixed = [i for i in range(len(self.headers)) if i != self.flex]
        lines = console.render_lines(self._table(fixed, None), options, pad=False)
        if len(lines) != 2 + len(self.rows):  # not one line a row (a very narrow screen)
            yield self._table(fixed, None)
            for row in self.rows:
                yield Padding(self._flex_text(row[self.flex]), (0, 0, 0, 4), expand=False)  # type: ignore[index]
            return
        name = self.headers[self.flex][0]  # type: ignore[index]
        for line in lines[:2]:
            yield from line
            yield Segment.line()
        for row, line in zip(self.rows, lines[2:], strict=True):
            yield from line
            yield Segment.line()
            text = self._flex_text(row[self.flex])  # type: ignore[index]
            text.stylize("dim")
            yield Padding(Text.assemble((f"{name}: ", "dim"), text), (0, 0, 0, 4), expand=False)


def records(names: list[str], rows: Iterable[list[Any]]) -> RenderResult:
    """Each row as one "name: value" line a field, rows apart by a blank line: what a
    table becomes on a screen too narrow for its columns (COLUMNS=20 printed `logs` and
    `usage` as rows of "…", hostile-11). A long value wraps under its line."""
    for index, row in enumerate(rows):
        if index:
            yield Text("")
        for name, cell in zip(names, row, strict=True):
            yield Text.assemble((f"{name}: ", "dim"), _cell_text(cell))


class TableOrRecords:
    """A rich table where its columns fit whole, else its ``rows`` as records()."""

    def __init__(self, table: Table, names: list[str], rows: list[list[Any]],
                 footer: list[Any] | None = None) -> None:
        """``footer``: the totals, shown as records under a "total" line (without the
        first field, which names the row)."""
        self.table, self.names, self.rows, self.footer = table, names, rows, footer

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, options.max_width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        needed = Measurement.get(console, options.update(max_width=10_000), self.table).minimum
        if needed <= options.max_width:
            yield self.table
        else:
            yield from records(self.names, self.rows)
            if self.footer is not None:
                yield Text("")
                yield Text("total", style="bold")
                yield from records(self.names[1:], [self.footer[1:]])


def fitted_table(
    headers: list[tuple[str, str]],
    rows: list[list[Any]],
    flexible: str | None = "query",
    caption: str | None = None,
    max_chars: int | None = None,
) -> FittedTable:
    """A compact table whose fixed columns keep their full width at any terminal width;
    only the ``flexible`` column gives way: it wraps, or on a narrow screen moves under
    its row (see FittedTable)."""
    return FittedTable(headers, rows, flexible, caption, max_chars)
