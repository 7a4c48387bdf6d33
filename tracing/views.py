"""Pages of the tracing app (trace explorer)."""
