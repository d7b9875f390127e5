from magedl.emulator.cli import main

raise SystemExit(main())
