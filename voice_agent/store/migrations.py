"""Numbered schema migrations: plain SQL that SQLite and PostgreSQL both run.

Write portable SQL: ``REAL`` for floats, ``INTEGER`` for flags and counters, ``TEXT`` for JSON,
``BLOB`` for bytes, ``INTEGER PRIMARY KEY AUTOINCREMENT`` for a generated key; ``dialect.py``
turns these into PostgreSQL's types (``DOUBLE PRECISION``, ``BYTEA``, identity columns) in one place.
"""

from __future__ import annotations

# Each migration is applied once, in order, inside one transaction. Later
# features append new entries; never edit an entry that has shipped.
MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "calls and transcript segments",
        """
        CREATE TABLE calls (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            source TEXT NOT NULL,
            started_at REAL NOT NULL,
            ended_at REAL,
            duration REAL,
            outcome TEXT,
            language TEXT,
            model TEXT,
            text TEXT NOT NULL DEFAULT '',
            meta TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX calls_started_at ON calls (started_at);
        CREATE TABLE segments (
            call_id TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            start REAL NOT NULL,
            "end" REAL NOT NULL,
            speaker TEXT NOT NULL,
            channel INTEGER NOT NULL,
            text TEXT NOT NULL,
            avg_logprob REAL,
            no_speech_prob REAL,
            words TEXT NOT NULL DEFAULT '[]',
            extra TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (call_id, idx)
        );
        """,
    ),
    (
        2,
        "live call turns and events",
        """
        CREATE TABLE turns (
            call_id TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            caller_text TEXT NOT NULL,
            agent_text TEXT NOT NULL,
            sentiment TEXT,
            sentiment_score REAL,
            voice_to_voice_ms REAL,
            timings TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (call_id, idx)
        );
        CREATE TABLE events (
            call_id TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            t REAL NOT NULL,
            type TEXT NOT NULL,
            data TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (call_id, seq)
        );
        CREATE INDEX events_type ON events (type);
        """,
    ),
    (
        3,
        "console users, API tokens, audit log and transcription jobs",
        """
        CREATE TABLE users (
            name TEXT PRIMARY KEY,
            role TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            created_at REAL NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE api_tokens (
            id TEXT PRIMARY KEY,
            user_name TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
            token_hash TEXT NOT NULL UNIQUE,
            label TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            last_used_at REAL,
            revoked INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE audit_log (
            id TEXT PRIMARY KEY,
            at REAL NOT NULL,
            user_name TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX audit_log_at ON audit_log (at);
        CREATE TABLE transcription_jobs (
            id TEXT PRIMARY KEY,
            filename TEXT NOT NULL,
            path TEXT NOT NULL,
            status TEXT NOT NULL,
            progress REAL NOT NULL DEFAULT 0,
            created_by TEXT NOT NULL,
            created_at REAL NOT NULL,
            finished_at REAL,
            error TEXT,
            call_id TEXT,
            result TEXT
        );
        """,
    ),
    (
        4,
        "sign-out kept across restarts, sessions ended by password changes, token expiry, live calls",
        """
        CREATE TABLE revoked_sessions (
            nonce TEXT PRIMARY KEY,
            user_name TEXT NOT NULL,
            expires_at REAL NOT NULL
        );
        CREATE INDEX revoked_sessions_expires_at ON revoked_sessions (expires_at);
        ALTER TABLE users ADD COLUMN sessions_after REAL NOT NULL DEFAULT 0;
        ALTER TABLE api_tokens ADD COLUMN expires_at REAL;
        UPDATE api_tokens SET expires_at = created_at + 7776000 WHERE expires_at IS NULL;
        ALTER TABLE calls ADD COLUMN worker TEXT;
        CREATE INDEX calls_outcome ON calls (outcome);
        CREATE INDEX transcription_jobs_call_id ON transcription_jobs (call_id)
        """,
    ),
    (
        5,
        "per-call analytics and the questions the knowledge base could not answer",
        """
        CREATE TABLE call_analytics (
            call_id TEXT PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,
            version INTEGER NOT NULL,
            started_at REAL NOT NULL,
            kind TEXT NOT NULL,
            outcome TEXT NOT NULL,
            transfer_reason TEXT NOT NULL DEFAULT '',
            handle_s REAL NOT NULL DEFAULT 0,
            turns INTEGER NOT NULL DEFAULT 0,
            caller_talk_s REAL NOT NULL DEFAULT 0,
            agent_talk_s REAL NOT NULL DEFAULT 0,
            silence_s REAL NOT NULL DEFAULT 0,
            overlap_s REAL NOT NULL DEFAULT 0,
            barge_ins INTEGER NOT NULL DEFAULT 0,
            sentiment_start REAL,
            sentiment_end REAL,
            sentiment_mean REAL,
            qa_passed INTEGER NOT NULL DEFAULT 0,
            qa_checked INTEGER NOT NULL DEFAULT 0,
            data TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX call_analytics_started_at ON call_analytics (started_at);
        CREATE TABLE kb_gaps (
            call_id TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
            turn INTEGER NOT NULL,
            at REAL NOT NULL,
            question TEXT NOT NULL,
            norm TEXT NOT NULL,
            entry TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (call_id, turn)
        );
        CREATE INDEX kb_gaps_at ON kb_gaps (at)
        """,
    ),
    (
        6,
        "data protection: key state, keyed search terms and caller references, retention marks",
        """
        CREATE TABLE protection_state (
            name TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE call_terms (
            call_id TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
            term TEXT NOT NULL,
            PRIMARY KEY (call_id, term)
        );
        CREATE INDEX call_terms_term ON call_terms (term);
        ALTER TABLE calls ADD COLUMN caller_ref TEXT;
        ALTER TABLE calls ADD COLUMN customer_ref TEXT;
        ALTER TABLE calls ADD COLUMN recording_deleted_at REAL;
        ALTER TABLE calls ADD COLUMN transcript_deleted_at REAL;
        CREATE INDEX calls_caller_ref ON calls (caller_ref);
        CREATE INDEX calls_customer_ref ON calls (customer_ref);
        CREATE INDEX transcription_jobs_created_at ON transcription_jobs (created_at)
        """,
    ),
]
