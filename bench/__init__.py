"""xconvt's benchmark suite: ``python -m bench [quick|cpu|gpu|sweep] [options]``.

Times every xconvt algorithm and PyTorch's ``conv_transpose3d`` on the same
seeded inputs in one process, checks every result against PyTorch (or an
independent float64 reference), and writes a table, CSV and JSON (and, for the
kernel-size sweep, a PNG).  See ``bench/README.md``.

Modules: ``cases`` (the suites), ``reference`` (the float64 oracle),
``devices`` (NumPy/CPU and CuPy/GPU), ``timing``, ``measure`` (one case),
``report`` (tables, files, metadata), ``sweep``, ``cli``.
"""
