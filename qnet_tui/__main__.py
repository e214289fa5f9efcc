from qnet_tui.cli import main

raise SystemExit(main())
