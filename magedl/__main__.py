from magedl.cli import main

raise SystemExit(main())
