import sys

from core_model.cli import main

sys.exit(main())
