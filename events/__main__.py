"""``python -m events``: run an embedded broker until interrupted."""

from events.broker_cli import main

raise SystemExit(main())
