"""Data protection: encryption at rest (keys, sealed values and files), key rotation, retention and erasure.

``cipher`` and ``files`` are the mechanisms; the store seals and opens its text columns with them
(``voice_agent.store``), the session writes sealed recordings, and the web API streams them back
decrypted. ``rotation``, ``retention`` and ``erasure`` are the operations behind ``voice-agent keys``,
``serve``'s retention schedule and ``voice-agent erase`` / ``POST /api/erasure``.
"""
