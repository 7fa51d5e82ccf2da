"""The test run executes the notebooks on the demo data: seconds, and the same on every machine.

Set CUR_ML_NOTEBOOK_DATA=auto (or a directory) to run them on the real data under pytest.
"""

import os

os.environ.setdefault("CUR_ML_NOTEBOOK_DATA", "demo")
