import sys

from biomae.cli import main

sys.exit(main())
