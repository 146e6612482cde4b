"""`python -m curate ...` is `thresher curate ...`."""

from curate.app import main

main()
