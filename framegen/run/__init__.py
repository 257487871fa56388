"""The run: a storyboard's shots (shots), what identifies each (identity), the passes
that render them (render, anchor) and the job that loops over them (job)."""
