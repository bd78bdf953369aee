"""The sensor: :class:`~.cancelled.JobCancelledSensor`."""
