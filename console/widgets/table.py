"""The console's data table: every table on every screen moves the same way.

Besides the arrows, page up/down and ctrl+home/ctrl+end of Textual's `DataTable`, `j`/`k` move
a row and `g`/`G` go to the first and last row (console-ux: arrows and vim keys together). The
keys come from the action registry (scope `table`), so a keymap file moves them on every table
at once; screens bind none of them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.binding import BindingType
from textual.widgets import DataTable

from console import actions


class SignalTable(DataTable[Any]):
    """A `DataTable` with the console's table keys (registry scope `table`)."""

    BINDINGS: ClassVar[list[BindingType]] = [*actions.bindings("table")]

    def selected_key(self) -> str | None:
        """The key of the row under the cursor, or None when the table has no rows."""
        if not self.row_count:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
