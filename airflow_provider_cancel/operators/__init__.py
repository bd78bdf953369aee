"""The operator: :class:`~.cancel.CancelJobOperator`."""
