"""Pure decision logic: event catalog, tag resolution, matching, mapping, evaluation.

Nothing here touches Kafka, HTTP, DuckDB or the terminal, so the same code serves the pipeline,
previews, dry runs and replays, and is tested without any of them.
"""
