import sys

from lpcores.fusesoc import main

sys.exit(main())
