"""Every console command in one registry: id → keys, description, footer visibility, danger.

Bindings, the footer, the `?` help screen, the `ctrl+p` palette and read-only mode all read this
table, so a key shown in help is the key that works, and a mutating action hidden in read-only
mode is hidden everywhere. Keys can be remapped by id (`App.set_keymap`).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding

GLOBAL = "global"


@dataclass(frozen=True)
class ActionSpec:
    id: str
    keys: str
    action: str
    description: str
    scope: str = GLOBAL
    show: bool = False
    dangerous: bool = False
    priority: bool = False

    @property
    def key_display(self) -> str:
        return self.keys.split(",")[0]

    def binding(self) -> Binding:
        return Binding(
            self.keys,
            self.action,
            self.description,
            show=self.show,
            priority=self.priority,
            id=self.id,
        )


ACTIONS: tuple[ActionSpec, ...] = (
    # everywhere
    ActionSpec("help", "question_mark,f1", "app.help", "Help", show=True),
    ActionSpec("command-line", "colon", "app.command_line", "Command"),
    ActionSpec("back", "q", "app.back", "Back/quit", show=True),
    ActionSpec("goto-flows", "1", "app.goto('flows')", "Flows"),
    ActionSpec("goto-connections", "2", "app.goto('connections')", "Connections"),
    ActionSpec("goto-catalog", "3", "app.goto('catalog')", "Tags & events"),
    ActionSpec("goto-retry", "4", "app.goto('retry')", "Retry queue"),
    ActionSpec("goto-metrics", "5", "app.goto('metrics')", "Metrics"),
    ActionSpec("goto-sql", "6", "app.goto('sql')", "SQL"),
    ActionSpec("goto-replay", "7", "app.goto('replay')", "Replay"),
    ActionSpec("refresh", "ctrl+r", "screen.refresh_now", "Refresh"),
    ActionSpec("pause", "p", "screen.toggle_pause", "Pause/resume refresh"),
    ActionSpec("debug", "f12", "app.debug_info", "Debug info"),
    ActionSpec("refresh-faster", "plus", "app.refresh_interval(-1)", "Refresh more often"),
    ActionSpec("refresh-slower", "minus", "app.refresh_interval(1)", "Refresh less often"),
    ActionSpec("quit", "ctrl+q", "quit", "Quit (asks under csignal run)", priority=True),
    ActionSpec("erase-person", "ctrl+e", "app.erase_person", "Erase a person…", dangerous=True),
    # the `:` command line and the filter/search fields of the flow list and the retry queue
    ActionSpec("command-line-close", "escape", "dismiss", "Close", scope="command-line"),
    ActionSpec("filter-clear", "escape", "clear", "Clear the filter", scope="filter"),
    # `?` help itself
    ActionSpec("help-close", "escape,q,question_mark,f1", "close", "Close", scope="help"),
    ActionSpec("help-top", "g,home", "scroll_top", "Top", scope="help"),
    ActionSpec("help-bottom", "G,end", "scroll_bottom", "Bottom", scope="help"),
    # yes/no questions (console.screens.modals.ConfirmModal)
    ActionSpec("confirm-yes", "y", "answer(True)", "Yes", scope="confirm", show=True),
    ActionSpec("confirm-no", "n,escape", "answer(False)", "No", scope="confirm", show=True),
    # a confirmation typed out (going LIVE, erasing)
    ActionSpec("confirm-cancel", "escape", "cancel", "Cancel", scope="type-confirm", show=True),
    # moving between a dialog's buttons (yes/no, leaving the console, unsaved edits)
    ActionSpec(
        "dialog-previous", "left,h", "app.focus_previous", "Previous button", scope="dialog"
    ),
    ActionSpec("dialog-next", "right,l", "app.focus_next", "Next button", scope="dialog"),
    # leaving the console under `csignal run` (the quit dialog; console.session)
    ActionSpec(
        "quit-detach",
        "d",
        "detach",
        "Detach: close the console, Signal keeps running",
        scope="quit",
        show=True,
    ),
    ActionSpec(
        "quit-stop",
        "s",
        "stop_signal",
        "Stop Signal: stop deliveries and every service",
        scope="quit",
        show=True,
    ),
    ActionSpec("quit-cancel", "escape,c,q", "cancel", "Cancel: stay in the console", scope="quit"),
    ActionSpec("quit-help", "question_mark,f1", "app.help", "Help", scope="quit"),
    # every table (console.widgets.table), besides the arrows, page and ctrl+home/end keys
    ActionSpec("table-down", "j", "cursor_down", "Next row", scope="table"),
    ActionSpec("table-up", "k", "cursor_up", "Previous row", scope="table"),
    ActionSpec("table-top", "g", "scroll_top", "First row", scope="table"),
    ActionSpec("table-bottom", "G", "scroll_bottom", "Last row", scope="table"),
    # the mapping preview, read top to bottom: home/end go to its first and last row
    ActionSpec("preview-top", "home", "scroll_top", "First row", scope="preview-table"),
    ActionSpec("preview-bottom", "end", "scroll_bottom", "Last row", scope="preview-table"),
    # text panels (item detail, reasons, previews, debug info)
    ActionSpec("panel-close", "escape,q,enter", "close", "Close", scope="panel"),
    ActionSpec("panel-help", "question_mark,f1", "app.help", "Help", scope="panel"),
    # flows
    ActionSpec("flow-open", "enter", "open_flow", "Open", scope="flows"),
    ActionSpec(
        "flow-active",
        "a",
        "toggle_active",
        "Active",
        scope="flows",
        show=True,
        dangerous=True,
    ),
    ActionSpec(
        "flow-mode", "t", "toggle_mode", "Live/test", scope="flows", show=True, dangerous=True
    ),
    ActionSpec("flow-reasons", "i", "show_reasons", "Reasons", scope="flows", show=True),
    ActionSpec("flow-new", "n", "new_flow", "New flow", scope="flows", dangerous=True),
    ActionSpec("flow-filter", "slash", "filter", "Filter", scope="flows", show=True),
    # flow editor
    ActionSpec(
        "flow-save",
        "ctrl+s",
        "save",
        "Save",
        scope="flow",
        show=True,
        dangerous=True,
        priority=True,
    ),
    ActionSpec(
        "flow-refresh-fields",
        "ctrl+f",
        "refresh_fields",
        "Refresh target fields",
        scope="flow",
        show=True,
        dangerous=True,
        priority=True,
    ),
    ActionSpec(
        "flow-preview",
        "ctrl+o",
        "preview",
        "Preview mapping",
        scope="flow",
        show=True,
        priority=True,
    ),
    ActionSpec("flow-close", "escape", "close", "Close", scope="flow", show=True),
    ActionSpec("flow-back", "q", "close", "Back (asks when edits are unsaved)", scope="flow"),
    ActionSpec(
        "flow-add-field",
        "ctrl+n",
        "add_field",
        "Add mapping field",
        scope="flow",
        dangerous=True,
        priority=True,
    ),
    ActionSpec(
        "flow-delete-field",
        "ctrl+d",
        "delete_field",
        "Delete mapping field",
        scope="flow",
        dangerous=True,
        priority=True,
    ),
    ActionSpec(
        "flow-new-mapping",
        "f7",
        "new_mapping",
        "New mapping",
        scope="flow",
        dangerous=True,
        priority=True,
    ),
    ActionSpec(
        "flow-delete-mapping",
        "f8",
        "delete_mapping",
        "Delete the chosen mapping (refused while flows use it)",
        scope="flow",
        dangerous=True,
        priority=True,
    ),
    ActionSpec("flow-add-rule", "f4", "add_rule", "Add filter rule", scope="flow", priority=True),
    ActionSpec(
        "flow-remove-rule",
        "f9",
        "remove_rule",
        "Remove the filter rule with the focus",
        scope="flow",
        priority=True,
    ),
    ActionSpec(
        "flow-filter-rows",
        "f10",
        "filter_rows",
        "Filters shown as JSON: back to rows",
        scope="flow",
        priority=True,
    ),
    ActionSpec(
        "flow-pick",
        "f2",
        "pick",
        "Pick from Marketo (campaign, form, program or status field)",
        scope="flow",
        priority=True,
    ),
    # the Marketo picker (campaigns, forms, programs, program statuses)
    ActionSpec(
        "picker-cancel",
        "escape",
        "cancel",
        "Cancel (type the value instead)",
        scope="picker",
        show=True,
    ),
    # a new mapping (the flow editor's mapping dialog)
    ActionSpec(
        "mapping-form-done",
        "ctrl+s",
        "done",
        "Create",
        scope="mapping-form",
        show=True,
        priority=True,
    ),
    ActionSpec(
        "mapping-form-cancel", "escape", "cancel", "Cancel", scope="mapping-form", show=True
    ),
    # one mapping field (the flow editor's field dialog)
    ActionSpec(
        "field-done", "ctrl+s", "done", "Done", scope="field-form", show=True, priority=True
    ),
    ActionSpec("field-cancel", "escape", "cancel", "Cancel", scope="field-form", show=True),
    # leaving an editor with unsaved edits
    ActionSpec("unsaved-save", "s", "save", "Save the edits, then close", scope="unsaved"),
    ActionSpec("unsaved-discard", "d", "discard", "Discard the edits and close", scope="unsaved"),
    ActionSpec("unsaved-keep", "escape,k", "keep", "Keep editing", scope="unsaved"),
    # connections
    ActionSpec("conn-open", "enter", "edit", "Edit", scope="connections"),
    ActionSpec(
        "conn-new", "n", "new_connection", "New", scope="connections", show=True, dangerous=True
    ),
    ActionSpec(
        "conn-delete",
        "d",
        "delete_connection",
        "Delete",
        scope="connections",
        dangerous=True,
    ),
    ActionSpec(
        "conn-test",
        "t",
        "test_selected",
        "Test",
        scope="connections",
        show=True,
        dangerous=True,
    ),
    ActionSpec(
        "conn-save-test",
        "ctrl+t",
        "save_and_test",
        "Save & Test",
        scope="connection-form",
        show=True,
        dangerous=True,
        priority=True,
    ),
    ActionSpec(
        "conn-save",
        "ctrl+s",
        "save",
        "Save",
        scope="connection-form",
        show=True,
        dangerous=True,
        priority=True,
    ),
    ActionSpec("conn-close", "escape", "close", "Close", scope="connection-form", show=True),
    ActionSpec(
        "source-new",
        "c",
        "new_source",
        "New Certain source",
        scope="connections",
        show=True,
        dangerous=True,
    ),
    # a Certain source's form (console.screens.source_form)
    ActionSpec(
        "source-save-test",
        "ctrl+t",
        "save_and_test",
        "Save & Test",
        scope="source-form",
        show=True,
        dangerous=True,
        priority=True,
    ),
    ActionSpec(
        "source-save",
        "ctrl+s",
        "save",
        "Save",
        scope="source-form",
        show=True,
        dangerous=True,
        priority=True,
    ),
    ActionSpec("source-close", "escape", "close", "Close", scope="source-form", show=True),
    # catalog
    ActionSpec("catalog-open", "enter", "open_event", "Event setup", scope="catalog"),
    ActionSpec(
        "catalog-assign",
        "a",
        "assign_tags",
        "Assign tags…",
        scope="catalog",
        show=True,
        dangerous=True,
    ),
    ActionSpec("catalog-next-pane", "tab", "app.focus_next", "Next pane", scope="catalog"),
    # assigning tags to one item (account level)
    ActionSpec("assign-save", "ctrl+s", "save", "Save", scope="assign", show=True, priority=True),
    ActionSpec("assign-cancel", "escape", "cancel", "Cancel", scope="assign", show=True),
    # retry queue
    ActionSpec("retry-open", "enter", "open_item", "Detail", scope="retry"),
    ActionSpec("retry-select", "space", "select", "Select", scope="retry", show=True),
    ActionSpec(
        "retry-resubmit", "r", "resubmit", "Resubmit", scope="retry", show=True, dangerous=True
    ),
    ActionSpec(
        "retry-resubmit-all",
        "R",
        "resubmit_all",
        "Resubmit all matching",
        scope="retry",
        show=True,
        dangerous=True,
    ),
    ActionSpec(
        "retry-tag-status",
        "T",
        "tag_status",
        "Tag this status…",
        scope="retry",
        dangerous=True,
    ),
    # a retry item's detail
    ActionSpec("item-close", "escape,q,enter", "close", "Close", scope="retry-item"),
    # erasing a person (a dialog of its own: esc only, so both fields can be typed into)
    ActionSpec("erase-close", "escape", "close", "Close", scope="erase"),
    ActionSpec("item-help", "question_mark", "app.help", "Help", scope="retry-item"),
    ActionSpec(
        "item-tag-status",
        "t,T",
        "tag_status",
        "Tag this status…",
        scope="retry-item",
        show=True,
        dangerous=True,
    ),
    ActionSpec("retry-search", "slash", "filter", "Search", scope="retry", show=True),
    ActionSpec("retry-filter-status", "s", "cycle_status", "Status filter", scope="retry"),
    ActionSpec("retry-filter-category", "c", "cycle_category", "Category filter", scope="retry"),
    ActionSpec(
        "retry-filter-integration", "i", "cycle_integration", "Integration filter", scope="retry"
    ),
    ActionSpec(
        "retry-next",
        "right_square_bracket,ctrl+f",
        "next_page",
        "Next page",
        scope="retry",
    ),
    ActionSpec(
        "retry-prev", "left_square_bracket,ctrl+b", "prev_page", "Previous page", scope="retry"
    ),
    # metrics
    ActionSpec("metrics-mode", "m", "toggle_mode", "Live/test", scope="metrics", show=True),
    ActionSpec("metrics-period", "d", "next_period", "Period", scope="metrics", show=True),
    ActionSpec("metrics-follow", "end", "follow", "Follow feed", scope="metrics"),
    ActionSpec(
        "metrics-feed-status", "s", "cycle_feed_status", "Feed status", scope="metrics", show=True
    ),
    ActionSpec("metrics-tab-previous", "left,h", "tab(-1)", "Previous tab", scope="metrics"),
    ActionSpec("metrics-tab-next", "right,l", "tab(1)", "Next tab", scope="metrics"),
    # replay
    ActionSpec(
        "replay-dry-run", "ctrl+d", "dry_run", "Dry run", scope="replay", show=True, priority=True
    ),
    ActionSpec(
        "replay-start",
        "ctrl+s",
        "start_replay",
        "Replay for real",
        scope="replay",
        show=True,
        dangerous=True,
        priority=True,
    ),
    ActionSpec(
        "replay-cancel",
        "ctrl+x",
        "cancel_replay",
        "Cancel replay",
        scope="replay",
        show=True,
        dangerous=True,
        priority=True,
    ),
    ActionSpec(
        "replay-leave-box",
        "escape",
        "leave_box",
        "Leave the text box (again: leave the screen)",
        scope="replay",
    ),
    # sql
    ActionSpec("sql-run", "ctrl+j,ctrl+enter", "run", "Run", scope="sql", show=True, priority=True),
    ActionSpec(
        "sql-rows", "ctrl+l", "cycle_rows", "Row cap", scope="sql", show=True, priority=True
    ),
    ActionSpec("sql-leave-editor", "escape", "leave_editor", "Leave the editor", scope="sql"),
)

BY_ID: dict[str, ActionSpec] = {a.id: a for a in ACTIONS}


def for_scope(scope: str) -> list[ActionSpec]:
    return [a for a in ACTIONS if a.scope == scope]


def bindings(scope: str) -> list[Binding]:
    return [a.binding() for a in for_scope(scope)]


def default_keymap() -> dict[str, str]:
    """The keys by id, the shape `App.set_keymap` takes — export, edit, load back."""
    return {a.id: a.keys for a in ACTIONS}


def is_dangerous(scope: str, action: str) -> bool:
    return any(a.dangerous and a.action == action for a in ACTIONS if a.scope in (scope, GLOBAL))
