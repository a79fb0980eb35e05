"""dlq: the dead letter index and the commands over it.

`main` (the worker) indexes every message of `dead_letter` in Postgres (`workers.dlq.index`);
`list_command` and `replay_command` (`--list`, `--replay`, their options from `add_arguments`) read the
index and send parked messages back to their topics (`workers.dlq.commands`, which documents the replay
policies).
"""

from workers.dlq.commands import add_arguments, list_command, replay_command
from workers.dlq.index import main

__all__ = ["add_arguments", "list_command", "main", "replay_command"]
