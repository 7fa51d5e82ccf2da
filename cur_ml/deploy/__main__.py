"""`python -m cur_ml.deploy up|down|status` (what deploy/cluster runs)."""

from cur_ml.deploy.cli import main

main()
