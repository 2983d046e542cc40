import os
import signal
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# the `bolt` processes the tests start share one compilation cache for the session (bolt/cache.py),
# never the user's own
os.environ.setdefault("BOLT_CACHE_DIR", tempfile.mkdtemp(prefix="bolt-test-cache-"))
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")

# a test suite started in the background by a non-interactive shell inherits SIGINT ignored, and so would
# every `bolt` process it starts (an ignored signal stays ignored across exec, and Python then installs no
# KeyboardInterrupt handler): the Ctrl-C tests need the default disposition back
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

# the test process itself uses that cache too: many tests build their own problem, and so their own
# jitted closures, over the same shapes; the XLA programs are the same, so they compile once per session
# (a program loaded from the cache still counts as a compilation in SolveResult.compilations)
from bolt.cache import enable_compilation_cache  # noqa: E402

enable_compilation_cache()
