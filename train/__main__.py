"""`python -m train ...` is `thresher train ...`."""

from train.app import main

main()
