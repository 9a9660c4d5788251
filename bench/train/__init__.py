"""Training: the one budgeted loop (`engine`), FLOP counting, schedules, the harness side of methods."""
