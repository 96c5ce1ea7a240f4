from __future__ import annotations

from axis.cli import main

raise SystemExit(main())
