"""A list of tags to pick from, marked in words as well as in colour."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import SelectionList


class TagPicker(SelectionList[str]):
    """Tags to pick, each marked in words as well as colour ("✓ on" / "  off"), so the choice
    reads the same without colour (NO_COLOR, some SSH terminals)."""

    def mark(self) -> None:
        chosen = set(self.selected)
        for index in range(self.option_count):
            option = self.get_option_at_index(index)
            value = str(option.value)
            self.replace_option_prompt_at_index(
                index, Text(f"{'✓' if value in chosen else ' '} {value}")
            )

    def on_selection_list_selected_changed(self) -> None:
        self.mark()
