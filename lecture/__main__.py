import sys

from lecture.cli import main

sys.exit(main())
