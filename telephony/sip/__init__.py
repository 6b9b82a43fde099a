"""Native asyncio SIP (RFC 3261): messages, transports, transactions, dialogs, digest, user agent."""
