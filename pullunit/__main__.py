from pullunit.cli import main

raise SystemExit(main())
