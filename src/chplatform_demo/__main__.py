import sys

from chplatform_demo.cli import main

sys.exit(main())
