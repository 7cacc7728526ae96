import sys

from hfgpt.cli import main

sys.exit(main())
