"""``python -m harness.targets {build,size,measure}``."""
from harness.targets.measure import main

raise SystemExit(main())
