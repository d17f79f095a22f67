# Copied by run.sh into the unpacked sdist's tests/ (the sdist has no conftest.py).
# It changes no test: it only makes TestProxy's proxy.py instance listen where the conformance
# rules allow and where it cannot collide. TestProxy replaces proxy.py's default start-up flags
# (which contain `--hostname 127.0.0.1 --port 0`) with its plugin list, so the proxy would bind
# the fixed port 8899; the tests read the real port from PROXY.flags.port, so port 0 is safe.
_PROXY_FLAGS = ["--hostname", "127.0.0.1", "--port", "0", "--num-workers", "1", "--num-acceptors", "1"]


def pytest_collection_modifyitems(session, config, items):
    seen = set()
    for item in items:
        cls = getattr(item, "cls", None)
        if cls is None or cls in seen or not hasattr(cls, "PROXY_PY_STARTUP_FLAGS"):
            continue
        seen.add(cls)
        flags = list(cls.PROXY_PY_STARTUP_FLAGS)
        if "--port" not in flags:
            cls.PROXY_PY_STARTUP_FLAGS = flags + _PROXY_FLAGS
