"""The TUI's widgets, one per file: each panel reads a run's feed and redraws itself."""
