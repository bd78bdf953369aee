"""The trigger behind a deferred sensor: :class:`~.status.JobStatusTrigger`."""
