"""``python -m bot`` is the same as the ``reinforce`` command."""

from bot.cli import main

raise SystemExit(main())
