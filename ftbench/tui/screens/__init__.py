"""The TUI's screens: presets, live run, runs, run detail, compare, and the modal dialogs."""
