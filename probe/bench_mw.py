"""``bench gpu --precisions`` with the planner offered the MW tiles
(``WG_MW_TILES`` set as the library would set it, ``_MW`` from argv[1]):
python probe/bench_mw.py SCALE [bench args...]."""
import sys
sys.path.insert(0, ".")
from xconvt.backends.cuda import mma

mma.WG_MW_TILES = ((256, 32, 2), (256, 64, 2), (256, 128, 2), (512, 32, 4), (256, 32, 4))
mma._MW = float(sys.argv[1])
mma.mma_config.cache_clear()
from bench.cli import main

sys.exit(main(["gpu", "--precisions"] + sys.argv[2:]))
