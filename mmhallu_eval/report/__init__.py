"""HTML reports that read only run folders: one run, base vs tuned, and a leaderboard."""
