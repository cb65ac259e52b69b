import sys

from bench.drills.run import main

sys.exit(main())
