"""The shared kernel: what the key pool, conversations and the request path all stand on.

The product is layered; each layer imports only the layers below it (``lint-imports`` checks the
contracts in pyproject.toml)::

    router.gateway | router.commands | router.demo      HTTP gateway, CLI commands, demo
                 |
    router                     the request path (RequestRouter, dispatch, providers, routing)
                 |                 router.simulator: a leaf, started only by the CLI and the demo
    keys  |  conversation      the key pool and conversation history (independent of each other)
                 |
    kernel                     errors, settings, logging and masking, the store (Redis, Cluster,
                 |             embedded; degraded mode; script lane), Redis key names, tokens, JSON
    lua                        the Redis scripts and their loader

Modules: errors, settings, log, masking, text, jsonio, lru, providers, tokens, redis_keys, store,
script_lane, failover, redis_check, embedded_store and the package embedded (the in-process store:
keyspace, Lua bridge, redis-py client). The kernel imports nothing from ``keys``, ``conversation`` or
``router``; ``router.errors``, ``router.settings`` ... remain as re-exports for compatibility.
"""
