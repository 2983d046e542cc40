import os
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# the `bolt` processes the tests start share one compilation cache for the session (bolt/cache.py),
# never the user's own
os.environ.setdefault("BOLT_CACHE_DIR", tempfile.mkdtemp(prefix="bolt-test-cache-"))
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
