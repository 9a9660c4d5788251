"""Results: status and leaderboard tables, plots, reports (pure functions over run folders)."""
