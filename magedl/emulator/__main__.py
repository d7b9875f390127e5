from magedl.emulator.core import main

raise SystemExit(main())
