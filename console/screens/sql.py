"""SQL."""

from __future__ import annotations

from console.screens.base import BaseScreen


class SqlScreen(BaseScreen):
    SCOPE = "sql"
    TITLE_TEXT = "SQL"
