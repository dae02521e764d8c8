"""xconvt's test suite (a package so that test modules share ``reference`` and ``helpers``)."""
