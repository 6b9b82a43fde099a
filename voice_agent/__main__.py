"""`python -m voice_agent` runs the CLI."""

from voice_agent.cli import main

raise SystemExit(main())
