"""The DAGs as plain Python: one asset (`edit_asset`), deployment entrypoints and the CLI."""

import tasks  # noqa: F401  (sets Prefect's offline settings before prefect is imported)
