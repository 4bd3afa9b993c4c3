"""SQL: one read-only statement over the analytics views, results in a table with a row cap.

A statement control refuses (a write, a file read, several statements) or DuckDB rejects shows
the reason under the query box, which keeps the text so it can be fixed.

Cells, column names and errors (DuckDB quotes the value it could not convert) come from the
data: they show control characters, bidi overrides and line separators escaped (`\x1b`,
`fmt.cell`, `fmt.plain`, `fmt.safe`), as `csignal sql` does, so a status label like
`Reg\x1b]0;…\x07` cannot retitle or rewrite the operator's terminal.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.message import Message
from textual.widgets import DataTable, Static, TextArea

from apiclient.errors import ApiError, RequestRefused
from console import fmt
from console.calls import api_worker
from console.messages import ApiFailed, SqlFinished
from console.screens.base import BaseScreen
from console.widgets.table import SignalTable

ROW_CAPS = (100, 1000, 5000)
STARTER = "SELECT flow_name, status, count(*) AS n\nFROM outcomes\nGROUP BY ALL ORDER BY n DESC"
VIEWS = "views: changes, outcomes, retry_queue, api_calls, config_audit"


class SqlScreen(BaseScreen):
    CSS_PATH = Path(__file__).with_name("sql.tcss")
    SCOPE = "sql"
    TITLE_TEXT = "SQL"
    POLLS = False

    def __init__(self) -> None:
        super().__init__()
        self.max_rows = ROW_CAPS[1]

    def body(self) -> ComposeResult:
        editor = TextArea(STARTER, id="query", language=None, soft_wrap=True)
        editor.border_title = "query (ctrl+j runs)"
        editor.border_subtitle = VIEWS
        yield editor
        yield Static(self._status_text("ready"), id="sql-status")
        table = SignalTable(id="results", zebra_stripes=True)
        table.border_title = "results"
        yield table

    def on_mount(self) -> None:
        self.query_one("#query", TextArea).focus()

    def action_leave_editor(self) -> None:
        self.query_one("#results", DataTable).focus()

    def _status_text(self, text: str) -> str:
        return f"row cap {self.max_rows} (ctrl+l) · {text}"

    def action_cycle_rows(self) -> None:
        self.max_rows = ROW_CAPS[(ROW_CAPS.index(self.max_rows) + 1) % len(ROW_CAPS)]
        self.query_one("#sql-status", Static).update(self._status_text("ready"))

    def action_run(self) -> None:
        statement = self.query_one("#query", TextArea).text.strip()
        if not statement:
            return
        self.query_one("#query", TextArea).remove_class("error")
        self.query_one("#sql-status", Static).update(self._status_text("running…"))
        self.query_one("#results", DataTable).loading = True
        self.execute(statement, self.max_rows)

    @api_worker("sql-run")
    async def execute(self, statement: str, max_rows: int) -> None:
        query = self.console.client.sql(statement, max_rows=max_rows)
        result = await self.call_api("run the query", query, failed=_failure)
        self.post_message(SqlFinished(result, statement))

    @on(SqlFinished)
    def finished(self, message: SqlFinished) -> None:
        result = message.result
        table = self.query_one("#results", DataTable)
        table.loading = False
        with self.app.batch_update():
            table.clear(columns=True)
            for index, name in enumerate(result.columns):
                table.add_column(fmt.plain(name), key=f"c{index}")
            for number, row in enumerate(result.rows):
                table.add_row(*fmt.cells(fmt.cell(v, 40) for v in row), key=str(number))
        count = len(result.rows)
        more = ""
        if result.truncated_by == "bytes":
            more = " (truncated by the answer size cap: select fewer or narrower columns)"
        elif result.truncated:
            more = f" (truncated at the cap of {self.max_rows})"
        table.border_title = f"results [{count}{'+' if result.truncated else ''}]"
        self.query_one("#sql-status", Static).update(self._status_text(f"{count} rows{more}"))

    @on(ApiFailed)
    def failed(self, message: ApiFailed) -> None:
        self.query_one("#results", DataTable).loading = False
        self.query_one("#query", TextArea).add_class("error")
        status = self.query_one("#sql-status", Static)
        status.update(Text(f"✗ {fmt.safe(message.error)}", style="bold red"))
        self.console.report_error(message.what, message.error)


def _failure(error: ApiError) -> Message:
    """A statement control refused is the query's fault; anything else is reaching control."""
    what = "run the query" if isinstance(error, RequestRefused) else "reach control"
    return ApiFailed(what, error.message)
