"""``python -m ftbench``: the same as the ``ftbench`` command."""

from ftbench.cli import main

raise SystemExit(main())
