"""The key pool: which keys exist, their limits, and the atomic reservations that share them.

Modules:
    models       what a key is (``APIKey``, ``ModelBinding``) and which model it serves
    config       keys.json and the environment: the pool's metadata (never a secret)
    discovery    keys found in the environment (``OPENAI_API_KEY_1`` ...)
    secret_store the secrets, fetched from a backend (``keys.backends``: env, file, vault, aws,
                 azure, infisical) and registered with the masking pipeline
    scanner      finds provider API keys and other credentials in files
    records      the encoding of free text inside the key pool's records
    engine       the capacity engine: reservations in Redis through the Lua scripts
    outcomes     what a provider's answer does to a key (cooldown, disable, settle)
    overrides    key changes made at run time (admin API, add_key/remove_key), in Redis
    manager      ``KeyManager``: the pool as the request path sees it
    pool_keys    ``KeyManager.keys``: read-only (``keys[id] = key`` names ``put_key``)
    sync         ``SyncKeyManager``: the same methods, blocking; ``keys[id] = key`` works there
    status       status answers for operators

``keys`` stands on :mod:`kernel` (and :mod:`lua`) only; it never imports ``router`` or
``conversation``.
"""
